// Compile servers/wallet/contracts/*.sol with solc-js (npm `solc`, pinned in .ci/package.json) into the
// committed {abi, bytecode} artifacts, so neither runtime nor tests need a compiler.
//   node .ci/compile-contracts.js            write the artifacts
//   node .ci/compile-contracts.js --check    fail if a committed artifact differs from a fresh build
const fs = require('fs');
const path = require('path');
const solc = require('solc');

const dir = path.join(__dirname, '..', 'servers', 'wallet', 'contracts');
const check = process.argv.includes('--check');
let stale = 0;
for (const file of fs.readdirSync(dir).filter((f) => f.endsWith('.sol'))) {
  const name = path.basename(file, '.sol');
  const input = {
    language: 'Solidity',
    sources: { [file]: { content: fs.readFileSync(path.join(dir, file), 'utf8') } },
    settings: {
      optimizer: { enabled: true, runs: 200 },
      evmVersion: 'cancun',
      outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object'] } },
    },
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input)));
  const errors = (output.errors || []).filter((e) => e.severity === 'error');
  (output.errors || []).forEach((e) => console.error(e.formattedMessage));
  if (errors.length) process.exit(1);
  const contract = output.contracts[file][name];
  const artifact = JSON.stringify(
    { contract: name, compiler: solc.version(), abi: contract.abi, bytecode: '0x' + contract.evm.bytecode.object },
    null,
    1,
  ) + '\n';
  const target = path.join(dir, `${name}.json`);
  if (check) {
    if (!fs.existsSync(target) || fs.readFileSync(target, 'utf8') !== artifact) {
      console.error(`${target} is stale: run node .ci/compile-contracts.js`);
      stale += 1;
    }
  } else {
    fs.writeFileSync(target, artifact);
    console.log(`compiled ${name} (${contract.evm.bytecode.object.length / 2} bytes) with solc ${solc.version()}`);
  }
}
process.exit(stale ? 1 : 0);
