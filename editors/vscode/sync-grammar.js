// Copies the TextMate grammar from the repository (grammar/cnn.tmLanguage.json) into this
// extension, which must carry its own copy when packaged. Runs on `npm install` and before packaging.
const fs = require('node:fs');
const path = require('node:path');

const source = path.join(__dirname, '..', '..', 'grammar', 'cnn.tmLanguage.json');
const target = path.join(__dirname, 'syntaxes', 'cnn.tmLanguage.json');
fs.mkdirSync(path.dirname(target), { recursive: true });
fs.copyFileSync(source, target);
console.log(`grammar: ${path.relative(process.cwd(), source)} -> ${path.relative(process.cwd(), target)}`);
