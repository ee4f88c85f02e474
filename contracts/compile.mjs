// Compiles SwarmRegistry.sol offline with solcjs (npm `solc`, pinned in package.json) into
// out/SwarmRegistry.json: ABI, bytecode, compiler version and the source's SHA-256.
//   node compile.mjs          write out/
//   node compile.mjs --check  exit 1 when the committed out/ does not match the source
// The Rust side reads out/SwarmRegistry.json with alloy's `sol!` (relay/src/chain.rs).
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import solc from "solc";

const here = dirname(fileURLToPath(import.meta.url));
const name = "SwarmRegistry";
const source = readFileSync(join(here, `${name}.sol`), "utf8");
const input = {
  language: "Solidity",
  sources: { [`${name}.sol`]: { content: source } },
  settings: {
    optimizer: { enabled: true, runs: 200 },
    evmVersion: "cancun",
    outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
  },
};
const output = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (output.errors ?? []).filter((e) => e.severity === "error");
for (const e of output.errors ?? []) console.error(e.formattedMessage);
if (errors.length > 0) process.exit(1);
const contract = output.contracts[`${name}.sol`][name];
const artifact = {
  contractName: name,
  compiler: `solc ${solc.version()}`,
  sourceSha256: createHash("sha256").update(source).digest("hex"),
  abi: contract.abi,
  bytecode: { object: `0x${contract.evm.bytecode.object}` },
  deployedBytecode: { object: `0x${contract.evm.deployedBytecode.object}` },
};
const text = `${JSON.stringify(artifact, null, 2)}\n`;
const path = join(here, "out", `${name}.json`);
if (process.argv.includes("--check")) {
  let committed = "";
  try {
    committed = readFileSync(path, "utf8");
  } catch {
    // Missing counts as different.
  }
  if (committed !== text) {
    console.error(`contracts/out/${name}.json does not match contracts/${name}.sol: run \`node contracts/compile.mjs\` and commit out/`);
    process.exit(1);
  }
  console.log(`contracts/out/${name}.json matches the source (${artifact.compiler})`);
} else {
  mkdirSync(join(here, "out"), { recursive: true });
  writeFileSync(path, text);
  console.log(`wrote contracts/out/${name}.json (${artifact.compiler}, ${contract.evm.bytecode.object.length / 2} bytes of bytecode)`);
}
