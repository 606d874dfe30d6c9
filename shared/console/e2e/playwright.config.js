// Playwright settings for the console's browser tests: Debian's chromium, headless, one
// worker (the tests share one baton serve and its agents). scripts/test-console.sh sets BATON_URL.
const { defineConfig } = require('@playwright/test');

module.exports = defineConfig({
  testDir: '.',
  testMatch: /.*\.spec\.js/,
  workers: 1,
  fullyParallel: false,
  timeout: 90_000,
  expect: { timeout: 20_000 },
  // The JSON report lets scripts/test-console.sh print the failures last, where a CI log's tail shows them.
  reporter: [['list'], ['json', { outputFile: process.env.BATON_REPORT || 'test-results/report.json' }]],
  use: {
    baseURL: process.env.BATON_URL,
    browserName: 'chromium',
    headless: true,
    ignoreHTTPSErrors: true, // baton serve's self-signed certificate
    viewport: { width: 1280, height: 860 },
    launchOptions: { executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ['--no-sandbox'] },
  },
});
