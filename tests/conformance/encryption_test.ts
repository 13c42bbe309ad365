import { plaintextEncryption } from "../../fixtures/plugins/plaintext_encryption.ts";
import { mse } from "../../plugins/encryption/mse.ts";
import { encryptionSuite } from "./encryption_suite.ts";

encryptionSuite("mse({ policy: 'require' })", () => mse({ policy: "require" }));
encryptionSuite("mse({ policy: 'prefer' })", () => mse({ policy: "prefer" }));
encryptionSuite("mse({ policy: 'allow' })", () => mse({ policy: "allow" }));
encryptionSuite("mse({ policy: 'disable' })", () => mse({ policy: "disable" }));
encryptionSuite("plaintextEncryption (fixtures/plugins/plaintext_encryption.ts)", () => plaintextEncryption);
