// What the browser tests share: `kbert demo` started on a free port and stopped,
// and a median. (browser.test.mjs and search.test.mjs both drive a page it serves.)

import {spawn} from 'node:child_process';
import {dirname, resolve} from 'node:path';
import {fileURLToPath} from 'node:url';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

export function median(values) {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

// `kbert demo EXPORT_DIR --mode MODE` on port 0 ($KBERT_DEMO_PYTHON, default python3);
// resolves with {child, exited, url} once it prints its URL.
export function startDemo(exportDir, mode) {
  const python = process.env.KBERT_DEMO_PYTHON || 'python3';
  const child = spawn(python, ['-m', 'kbert.cli', 'demo', exportDir, '--host', '127.0.0.1', '--port', '0',
    '--mode', mode], {cwd: repo, stdio: ['ignore', 'pipe', 'pipe']});
  const exited = new Promise((r) => child.once('exit', r));
  return new Promise((resolvePromise, reject) => {
    let output = '';
    const timer = setTimeout(() => reject(new Error(`kbert demo did not start:\n${output}`)), 60000);
    const onData = (chunk) => {
      output += chunk;
      const match = output.match(/http:\/\/127\.0\.0\.1:\d+\//);
      if (match) {
        clearTimeout(timer);
        resolvePromise({child, exited, url: match[0]});
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`kbert demo exited with ${code}:\n${output}`));
    });
  });
}

export async function stopDemo(server) {
  if (!server) return;
  server.child.kill('SIGTERM');
  await server.exited;
}
