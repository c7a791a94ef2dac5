/**
 * `AbortSignal.any` without its leak: a signal that aborts with the reason
 * of the first of its sources to abort. Node (20 for ever, later ones
 * until a full GC) keeps every signal made by `any` listed on its sources,
 * so a long-lived source (a greenlet's kill signal) combined again and
 * again (a Timeout per loop iteration) grows without bound. Here each
 * source keeps weak references to the signals that follow it, pruned as
 * they grow: memory follows the signals still in use. Internal.
 */

/** The signals following one source, weakly, and when to prune them next. */
interface Followers {
  refs: WeakRef<AbortSignal>[]
  pruneAt: number
}

const MIN_PRUNE_AT = 16

const followersOf = new WeakMap<AbortSignal, Followers>()
/** Each signal made here, to its controller: kept while the signal is in use, not longer. */
const controllerOf = new WeakMap<AbortSignal, AbortController>()

export function anySignal(sources: readonly AbortSignal[]): AbortSignal {
  for (const source of sources) if (source.aborted) return AbortSignal.abort(source.reason)
  const controller = new AbortController()
  const signal = controller.signal
  controllerOf.set(signal, controller)
  const ref = new WeakRef(signal)
  for (const source of sources) follow(source, ref)
  return signal
}

function follow(source: AbortSignal, ref: WeakRef<AbortSignal>): void {
  let followers = followersOf.get(source)
  if (followers === undefined) {
    const created: Followers = { refs: [], pruneAt: MIN_PRUNE_AT }
    followers = created
    followersOf.set(source, created)
    source.addEventListener(
      'abort',
      () => {
        const refs = created.refs
        created.refs = []
        for (const r of refs) {
          const signal = r.deref()
          if (signal !== undefined) controllerOf.get(signal)?.abort(source.reason)
        }
      },
      { once: true },
    )
  }
  followers.refs.push(ref)
  if (followers.refs.length >= followers.pruneAt) {
    followers.refs = followers.refs.filter((r) => {
      const signal = r.deref()
      return signal !== undefined && !signal.aborted
    })
    followers.pruneAt = Math.max(MIN_PRUNE_AT, followers.refs.length * 2)
  }
}
