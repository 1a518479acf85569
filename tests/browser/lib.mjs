// What the browser tests share: Debian's Chromium, headless, and `check`,
// which says what passed and ends the process at the first thing that
// did not.
import { chromium } from 'playwright-core';

export function check(cond, what) {
  if (!cond) {
    console.error('FAILED: ' + what);
    process.exit(1);
  }
  console.log('ok: ' + what);
}

export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}
