/**
 * The delay of the interval timers that keep the process (or a worker)
 * alive while something waits outside Node's view. Internal.
 *
 * Node clamps a timer delay above 2^31 - 1 ms to 1 ms: this is well below,
 * so such a timer practically never fires; it exists only to be ref'd.
 */
export const KEEP_ALIVE_MS = 2 ** 30
