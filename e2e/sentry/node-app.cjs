// An app that uses the stock @sentry/node, as README's "Use your Sentry SDK" shows it.
// Run by e2e/tests/sentry-node.spec.ts as `node node-app.cjs DSN crash|exit`: a handled
// error, then an uncaught exception or a normal exit. The SDK's ProcessSession integration
// makes the run one release-health session by itself.
const DSN = process.argv[2];

// README: node snippet begins
const Sentry = require('@sentry/node');

Sentry.init({
  dsn: DSN, // 'http://rpk_…@rollwatch.example.com/42'
  release: 'editor@1.4.2+build.7',
  environment: 'beta',
});
// README: node snippet ends

try {
  JSON.parse('{not json');
} catch (error) {
  Sentry.captureException(error); // handled: reported, never counted as a crash
}

if (process.argv[3] === 'crash') {
  setTimeout(() => {
    const settings = null;
    console.log(settings.theme); // uncaught: the SDK reports it and the process exits 1
  }, 10);
}
