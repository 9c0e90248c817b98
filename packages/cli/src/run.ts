import { UsageError } from './command.js';
import { commands, findCommand } from './registry.js';

function help(): string {
  const w = Math.max(...commands.map((c) => c.name.length));
  return [
    'usage: storkit <command> [options]',
    '',
    'commands:',
    ...commands.map((c) => `  ${c.name.padEnd(w)}  ${c.summary}`),
    '',
    "'storkit <command> --help' describes a command.",
  ].join('\n');
}

/** Run the CLI with argv (without node and the script path); resolves to the exit code. */
export async function runCli(argv: string[], out = process.stdout, err = process.stderr): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    out.write(`${help()}\n`);
    return name ? 0 : 2;
  }
  const cmd = findCommand(name);
  if (!cmd) {
    err.write(`storkit: unknown command '${name}'\n\n${help()}\n`);
    return 2;
  }
  if (!cmd.handlesHelp && (rest.includes('--help') || rest.includes('-h'))) {
    out.write(`${cmd.usage}\n`);
    return 0;
  }
  try {
    return await cmd.run(rest);
  } catch (e) {
    if (e instanceof UsageError) {
      err.write(`storkit ${name}: ${e.message}\n\n${cmd.usage}\n`);
      return 2;
    }
    throw e;
  }
}
