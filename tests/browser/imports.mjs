// Drives Debian's Chromium through the dashboard's front door, as a user
// would: log in, upload a requirements file with a bad line (the page shows
// the file:line error and nothing is written), upload a good one (the page
// shows the plan: what is reused, what is built from an sdist), queue the
// set's build and test, and follow it to the end with its live log.
// tests/serve.rs starts the server, then runs this:
//
//   REFINE_URL=… REFINE_TOKEN=… REFINE_BAD=FILE REFINE_GOOD=FILE REFINE_SHOTS=DIR \
//   node tests/browser/imports.mjs
//
// Exits non-zero (with the reason) when the dashboard does not do it.
import { check, launch } from './lib.mjs';

const url = process.env.REFINE_URL;
const token = process.env.REFINE_TOKEN;
const shots = process.env.REFINE_SHOTS;

const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.setDefaultTimeout(120000);

  // Without the token: the page says so, and an upload is refused.
  await page.goto(url + '/imports');
  check((await page.textContent('main')).includes('needs the token'), 'the import page asks for the token');
  await page.setInputFiles('#requirements', process.env.REFINE_GOOD);
  await page.click('#import-submit');
  await page.waitForSelector('#import-error');
  check((await page.textContent('#import-error')).includes('401'), 'an import without the token is refused (401)');

  await page.fill('input[name="token"]', token);
  await Promise.all([page.waitForURL(url + '/'), page.click('header button[type="submit"]')]);
  await page.click('header a:text("Import")');
  await page.waitForURL(url + '/imports');

  // A bad line: the file:line error, and nothing written.
  await page.setInputFiles('#requirements', process.env.REFINE_BAD);
  await page.click('#import-submit');
  await page.waitForSelector('#import-error');
  const err = await page.textContent('#import-result');
  check(err.includes('bad.txt:2: not a requirement'), 'a bad line is named by file and line: ' + err);
  check(err.includes('nothing was written'), 'the page says nothing was written');
  await page.screenshot({ path: shots + '/import-error.png', fullPage: true });

  // A good file: the plan.
  await page.setInputFiles('#requirements', process.env.REFINE_GOOD);
  await page.fill('#import-name', 'front');
  await page.click('#import-submit');
  await page.waitForSelector('#import-done');
  check((await page.textContent('#import-done')).includes('//sets:front'), 'imported as //sets:front');
  const rows = await page.locator('#import-plan tr.plan').allTextContents();
  // six has a rule in the served workspace; setuptools comes as a pure
  // wheel (to build front-door); front-door has only an sdist.
  check(rows.some((r) => r.startsWith('six') && r.includes('a rule of the workspace')), 'the plan uses the workspace\'s rule for six: ' + rows.join(' | '));
  check(rows.some((r) => r.startsWith('setuptools') && r.includes('pure wheel reused') && r.includes('(to build)')), 'the plan reuses setuptools\' pure wheel to build with');
  check(rows.some((r) => r.startsWith('front-door') && r.includes('built from sdist')), 'the plan builds front-door from its sdist');
  await page.screenshot({ path: shots + '/import-plan.png', fullPage: true });

  // Build and test it, and follow it to the end.
  await page.click('#queue-import');
  await page.waitForFunction(() => /job \d+: (done|failed)/.test(document.getElementById('follow-status').textContent), null, { timeout: 600000 });
  const st = await page.textContent('#follow-status');
  check(st.includes(': done'), 'the set built and passed its test: ' + st);
  const results = await page.locator('#follow-results tr.follow').allTextContents();
  check(results.some((r) => r.includes('//tests:front') && r.includes('built')), 'the run page part shows the test: ' + results.join(' | '));
  check((await page.getAttribute('#follow-run', 'href')).startsWith('/runs/'), 'the page links the run');
  const live = await page.textContent('#live-log');
  check(live.split('\n').length > 3, 'the page shows the build\'s log (' + (await page.textContent('#live-label')) + ')');
  await page.screenshot({ path: shots + '/import-built.png', fullPage: true });
} finally {
  await browser.close();
}
