/**
 * Greenlet-local storage: gevent's `gevent.local.local`.
 *
 * The properties of a `Local` are separate per greenlet: what one greenlet
 * sets, reads or deletes is its own, and code outside any greenlet shares
 * one more ("main") set of them. Methods, getters and setters of a subclass
 * live on its prototype, so every greenlet sees them; `this` in them is the
 * Local, and reads the calling greenlet's properties. A subclass's field
 * initializers and constructor run in the constructing greenlet (or outside
 * greenlets), and again, as gevent re-runs `__init__`, in each other
 * greenlet at its first use of the Local, with the arguments the subclass
 * passed to `super(...)`: so each greenlet starts with the fields' initial
 * values. Not for a subclass whose constructor takes parameters and passes
 * none to `super()` (it could not be called again as it was): there other
 * greenlets start with no properties of their own. Private fields (`#x`)
 * are not properties: they are shared by all greenlets.
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

/** How a subclass's constructor is run again for a greenlet's properties (see `Stores.of`). */
interface Init {
  readonly subclass: new (...args: unknown[]) => object
  readonly args: unknown[]
  /** The greenlet (`null`: code outside greenlets) whose properties the first run set. */
  readonly creator: WeakRef<object> | null
}

/** The run again of `subclass`'s constructor under way, and the properties it sets. */
let rerun: { subclass: object; store: object } | undefined

/** The properties of each greenlet that used a Local, and those of code outside greenlets. */
class Stores {
  readonly #byGreenlet = new WeakMap<Owner, object>()
  #main: object | undefined = undefined

  constructor(
    private readonly proto: object | null,
    private readonly init: Init | undefined,
  ) {}

  of(greenlet: Owner | null): object {
    if (greenlet === null) {
      if (this.#main === undefined) {
        this.#main = Object.create(this.proto) as object
        if (this.init?.creator !== null) this.#initialize(this.#main)
      }
      return this.#main
    }
    let store = this.#byGreenlet.get(greenlet)
    if (store === undefined) {
      store = Object.create(this.proto) as object
      this.#byGreenlet.set(greenlet, store)
      // Dropped when the greenlet finishes, even if something keeps the greenlet.
      const stores = new WeakRef(this.#byGreenlet)
      greenlet._rawlink(() => stores.deref()?.delete(greenlet))
      if (this.init?.creator?.deref() !== greenlet) this.#initialize(store)
    }
    return store
  }

  /** Runs the subclass's constructor again, its fields and `this` writes going to `store`. */
  #initialize(store: object): void {
    const init = this.init
    if (init === undefined) return
    const outer = rerun
    rerun = { subclass: init.subclass, store }
    try {
      Reflect.construct(init.subclass, init.args)
    } finally {
      rerun = outer
    }
  }
}

/** Routes every property access of a constructor run again to the properties it fills. */
function storeHandler(store: object): ProxyHandler<object> {
  return {
    get: (_target, key, receiver) => Reflect.get(store, key, receiver),
    set: (_target, key, value, receiver) => Reflect.set(store, key, value, receiver),
    has: (_target, key) => Reflect.has(store, key),
    deleteProperty: (_target, key) => Reflect.deleteProperty(store, key),
    defineProperty: (_target, key, descriptor) => Reflect.defineProperty(store, key, { ...descriptor, configurable: true }),
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
    if (rerun !== undefined && rerun.subclass === new.target) {
      // Run again for another greenlet (Stores.of): what it sets goes to that greenlet's properties.
      const { store } = rerun
      rerun = undefined
      // biome-ignore lint/correctness/noConstructorReturn: the constructor's `this` is the greenlet's view
      return new Proxy(Object.create(new.target.prototype) as object, storeHandler(store)) as LocalBase
    }
    const plain = Object.getPrototypeOf(new.target) === LocalBase
    // As gevent's `local("foo")`: a plain Local takes nothing.
    if (plain && args.length > 0) throw new TypeError(`${new.target.name} takes no constructor arguments, got ${args.length}`)
    // A subclass's constructor runs again in each greenlet, unless it takes parameters it did not pass on.
    const again = !plain && (args.length > 0 || new.target.length === 0)
    const creator = this._current()
    const init = again ? { subclass: new.target as Init['subclass'], args, creator: creator === null ? null : new WeakRef(creator) } : undefined
    stores.set(this, new Stores(new.target.prototype, init))
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
