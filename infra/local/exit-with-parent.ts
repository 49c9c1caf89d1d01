/*
 * Preloaded into each local agent (`node --import`): the parent holds the other end of an IPC channel, which
 * closes however the parent ends, even by SIGKILL. The agent then stops as if asked to, so no host process
 * outlives the local cloud it reports to.
 */
if (process.channel) {
  // The channel must not keep an agent alive by itself.
  process.channel.unref();
  process.once('disconnect', () => process.kill(process.pid, 'SIGTERM'));
}
