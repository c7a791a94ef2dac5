/**
 * Greenlet-local storage for sync greenlets: gevent's `gevent.local.local`
 * (see src/local.ts, where its logic lives), following the sync greenlet
 * that runs the calling code.
 */
import { LocalBase } from '../local'
import { getcurrent } from './greenlet'

/** Properties separate per sync greenlet (and one set for code outside greenlets): gevent's `local`. */
export class Local extends LocalBase {
  /** @internal */
  _current(): object | null {
    return getcurrent()
  }
}
