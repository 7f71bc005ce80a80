// `npm run -s key -- <name> <role> [scope pattern...]`: makes a new API key. Prints the key (give
// it to the client; it is not stored anywhere) and the keys-file entry, which holds only its hash.
import { generateKey, hashKey, KeyRing, ROLES, type Role } from "./auth.js";

const [name, role, ...scope] = process.argv.slice(2);
if (!name || !ROLES.includes(role as Role)) {
  process.stderr.write(`usage: npm run -s key -- <name> <${ROLES.join("|")}> [context-id pattern ...]   (default scope: *)\n`);
  process.exit(2);
}
const key = generateKey();
const entry = { name, role, scope: scope.length > 0 ? scope : ["*"], sha256: hashKey(key) };
try {
  KeyRing.parse(JSON.stringify([entry]), "the new entry"); // the same checks the server makes
} catch (err) {
  process.stderr.write(`${(err as Error).message}\n`);
  process.exit(2);
}
process.stdout.write(`key (give it to the client; it is shown only now): ${key}\nkeys-file entry: ${JSON.stringify(entry)}\n`);
