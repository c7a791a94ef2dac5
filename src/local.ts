/**
 * Greenlet-local storage: gevent's `gevent.local.local`.
 *
 * The properties of a `Local` are separate per greenlet: what one greenlet
 * sets, reads or deletes is its own, and code outside any greenlet shares
 * one more ("main") set of them. Methods, getters and setters of a subclass
 * live on its prototype, so every greenlet sees them; `this` in them is the
 * Local, and reads the calling greenlet's properties. A subclass's field
 * initializers and constructor run once, in the constructing greenlet (or
 * outside greenlets): they set its properties only, and a greenlet that
 * uses the Local later starts with none of its own (gevent re-runs
 * `__init__` there, which a JavaScript constructor cannot be). Private
 * fields (`#x`) are not properties: they are shared by all greenlets.
 *
 * A greenlet's properties are dropped when it finishes. Which greenlet is
 * current is asked of the mode: `Local` from `greenthread` follows async
 * greenlets (across awaits), the one from `greenthread/sync` sync greenlets.
 */
import { getcurrent } from './greenlet'

/** What a greenlet of either mode offers a Local: a link run when it finishes. */
interface Owner {
  _rawlink(callback: () => void): void
}

/** The properties of each greenlet that used a Local, and those of code outside greenlets. */
class Stores {
  readonly #byGreenlet = new WeakMap<Owner, object>()
  #main: object | undefined = undefined

  constructor(private readonly proto: object | null) {}

  of(greenlet: Owner | null): object {
    if (greenlet === null) return (this.#main ??= Object.create(this.proto))
    let store = this.#byGreenlet.get(greenlet)
    if (store === undefined) {
      store = Object.create(this.proto) as object
      this.#byGreenlet.set(greenlet, store)
      // Dropped when the greenlet finishes, even if something keeps the greenlet.
      const stores = new WeakRef(this.#byGreenlet)
      greenlet._rawlink(() => stores.deref()?.delete(greenlet))
    }
    return store
  }
}

const stores = new WeakMap<object, Stores>()

/** Routes every property access to the current greenlet's properties. */
const handler: ProxyHandler<LocalBase> = {
  get: (target, key, receiver) => Reflect.get(storeOf(target), key, receiver),
  set: (target, key, value, receiver) => Reflect.set(storeOf(target), key, value, receiver),
  has: (target, key) => Reflect.has(storeOf(target), key),
  deleteProperty: (target, key) => Reflect.deleteProperty(storeOf(target), key),
  ownKeys: (target) => Reflect.ownKeys(storeOf(target)),
  getOwnPropertyDescriptor: (target, key) => {
    const descriptor = Reflect.getOwnPropertyDescriptor(storeOf(target), key)
    // The Local itself has no properties: a non-configurable one would break the Proxy's invariants.
    if (descriptor !== undefined) descriptor.configurable = true
    return descriptor
  },
  defineProperty: (target, key, descriptor) => Reflect.defineProperty(storeOf(target), key, { ...descriptor, configurable: true }),
  // The Local itself must stay extensible for the traps above to keep the Proxy's invariants.
  preventExtensions: () => {
    throw new TypeError('a Local cannot be made non-extensible (Object.preventExtensions, seal, freeze): each greenlet has properties of its own')
  },
}

function storeOf(target: LocalBase): object {
  return stores.get(target)!.of(target._current() as Owner | null)
}

/** The part of `Local` both modes share: the mode says which greenlet is current. */
export abstract class LocalBase {
  constructor(...args: unknown[]) {
    // As gevent's `local("foo")`: a plain Local takes nothing.
    if (args.length > 0) throw new TypeError(`${new.target.name} takes no constructor arguments, got ${args.length}`)
    stores.set(this, new Stores(new.target.prototype))
    // Subclass fields and constructor code then act on the proxy, hence on the constructing greenlet's properties.
    return new Proxy(this, handler)
  }

  /** @internal The current greenlet of the mode, `null` outside greenlets. */
  abstract _current(): object | null
}

/** Properties separate per async greenlet (and one set for code outside greenlets): gevent's `local`. */
export class Local extends LocalBase {
  /** @internal */
  _current(): object | null {
    return getcurrent()
  }
}
