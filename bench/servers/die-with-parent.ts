/**
 * Preloaded (`--import`) into every benchmark server: exit when the benchmark runner is gone.
 *
 * The runner kills its children on any exit it sees; this covers the one it cannot see
 * (SIGKILL), where the child is re-parented and its ppid changes.
 */
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) process.exit(0);
}, 500).unref();
