#!/usr/bin/env node
// Minimal solc command-line stand-in over the official solc-js build (npm `solc`).
// Speaks the two things py-solc-x needs: `--version`, and `--standard-json` (input on stdin).
// The `solcjs` CLI prints a stray line before its JSON, so the JS API is used instead.
// Sources must arrive inlined ("content"); no import callback is offered on purpose, so
// native solc and solc-js compile exactly the same input.
'use strict';
const path = require('path');
const root = process.env.LEDGER_NODE_MODULES || path.join(__dirname, '..', 'node_modules');
const solc = require(path.join(root, 'solc'));
const args = process.argv.slice(2);
if (args.includes('--version')) {
  process.stdout.write('solc, the solidity compiler commandline interface\nVersion: ' + solc.version() + '\n');
  process.exit(0);
}
if (!args.includes('--standard-json')) {
  process.stderr.write('solcjs-adapter: only --version and --standard-json are supported\n');
  process.exit(2);
}
const chunks = [];
process.stdin.on('data', (c) => chunks.push(c));
process.stdin.on('end', () => {
  process.stdout.write(solc.compile(Buffer.concat(chunks).toString('utf8')));
});
