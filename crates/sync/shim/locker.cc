// The V8 half of greenthread/sync: the only code that touches V8 directly.
//
// Sync greenlets are OS threads sharing the main isolate through
// v8::Locker / v8::Unlocker. The Rust side owns the threads and the baton
// (exactly one thread runs JS at a time); this file does what V8 needs around
// every baton hand-over. Each rule below comes from a crash or hazard that the
// fiber-locker prototype measured:
//
// 1. Exit the isolate before unlocking, Enter after relocking, on every hold
//    of a greenlet thread. V8 11.3 records one cppgc stack start per isolate,
//    set by Isolate::Enter(); a thread that stays entered across switches
//    leaves another thread's stack start behind, and the conservative stack
//    scan of the next GC walks the wrong stack (SIGSEGV). Exiting also keeps
//    the isolate's entry stack LIFO, so disposing the isolate at exit never
//    finds it "entered by a thread". The main thread stays entered (Node
//    entered it) and re-enters/exits once after relocking, which resets the
//    stack start to its own stack without changing the entry stack.
// 2. Give every greenlet thread an explicit JS stack limit inside its own
//    stack. V8 otherwise derives the limit from the stack position at first
//    lock and a fixed size, which can lie below a small thread stack: deep
//    recursion would then hit the guard page (SIGSEGV) instead of throwing
//    RangeError. The limit gives JS what the main thread has (V8's default
//    --stack-size) and leaves the rest of an 8 MiB stack below it, as the
//    main thread does: V8's parsers, regexp compiler and bytecode generator
//    recurse without stack checks on some deep but legal input (30,000
//    nested regexp groups, destructuring 3,000 deep), and 192 KiB of room
//    under the limit was a SIGSEGV there where the main thread throws.
// 7. SIGPROF found at its default action at install is set to be ignored.
//    V8's CPU sampler signals the thread that started a profile, and
//    stopping the last one restores the SIGPROF action it found: a profile
//    started on one greenlet thread and stopped on another (or on the main
//    thread) left a sample signal pending for a thread parked on the baton,
//    delivered after the restore with the default action, which ends the
//    process. The loader does it again before each profile it sees start
//    (the inspector's Profiler.start, v8.startCpuProfile): removing a
//    process.on('SIGPROF') listener puts the default back. A profile already
//    running at install found the default before this: stop it on the
//    thread that started it.
// 3. Drain pending V8 interrupts before giving up the lock. Interrupt flags
//    (GC and compilation requests, TerminateExecution, inspector pauses) are
//    archived with the thread that held the lock; a greenlet that sleeps for
//    minutes would sit on them. Calling any JS function runs the function
//    entry's stack check, which services them.
// 4. After giving the baton away a thread touches nothing of V8 until it is
//    given the baton back: all V8 calls happen between relock and unlock.
// 5. Keep the continuation-preserved embedder data (Node's AsyncContextFrame:
//    AsyncLocalStorage's store from Node 24 on) per greenlet. V8 keeps one
//    slot per isolate and does not archive it, so the thread that gives the
//    baton away saves it as a handle of its own and sets it again when given
//    the baton back; a greenlet starts with none.
// 6. On V8 11.x (Node 20) a greenlet thread enters the isolate after it is
//    given the baton and before it relocks. Relocking restores the debugger's
//    per-thread state, and with any breakpoint set that re-applies
//    breakpoints through code that reads Isolate::Current() (the
//    BytecodeArrayIterator's local heap): null on a thread that is not
//    entered (SIGSEGV as soon as a debugger set a breakpoint). V8 12 enters
//    the isolate in Debug::RestoreDebug itself. Entering before the lock is
//    safe under the baton: the thread that gave it away has unlocked and
//    touches no V8 (rule 4), and nothing else enters this isolate. Entering
//    wrote the isolate's thread id into the state the relock then archives
//    for the previous holder; exiting and entering again with the lock held
//    sets this thread's own (the previous holder's is set again when it
//    relocks the same way; the main thread's id is read only by DCHECKs and
//    tracing on 11.x).
//
// What V8 does not support with archived threads, per version we ship for
// (V8 11.3 in Node 20, 12.4 in Node 22, 13.6 in Node 24, 14.6 in Node 26),
// and how src/sync/native.ts avoids it before any greenlet exists:
// - WebAssembly code GC, all four: WasmEngine::ReportLiveCodeFromStackForGC
//   calls CheckNoArchivedThreads, which is FATAL("archived threads in
//   combination with wasm not supported") if any thread is archived. Code
//   GC starts once tier-up (or debugging, wrapper caching, Liftoff flushing)
//   leaves about 64 KiB + 10% of wasm code dead; undici's fetch (llhttp)
//   reaches that. The loader sets --no-wasm-code-gc (read at each use):
//   dead wasm code then stays until its module is freed.
// - The continuation-preserved embedder data slot, 12.4 and later: it is an
//   isolate field, but Isolate::Iterate(RootVisitor*, ThreadLocalTop*) visits
//   it once for the current thread and once per archived thread, and the
//   scavenger's root visitor evacuates any young object it is handed, even
//   one already copied in this GC: what the first visit updated is left on a
//   stale copy. Node's AsyncContextFrame keeps a young Map there. With it
//   (Node 24+ by default) the loader sets --scavenger-precise-object-pinning
//   (13.x and later): objects the running thread's stack and handles reach,
//   that slot included, are pinned before roots are visited, so every visit
//   sees the same object. 12.4 lacks that flag: Node 22 with
//   --experimental-async-context-frame is refused.
// - Nothing else: the other users of archived threads (deoptimization,
//   debugger, live edit) walk their stacks and are supported.
//
// Built per Node ABI against that Node's headers (the V8 API is not stable
// across majors); install() refuses to run on any other Node.

#include <js_native_api_types.h>
#include <node_version.h>
#include <v8-locker.h>
#include <v8-version.h>
#include <v8.h>

#include <pthread.h>
#include <signal.h>

#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>

namespace {

// Headroom kept between the JS stack limit and the end of a greenlet's
// stack, for V8's runtime functions and native code below the limit (Node
// keeps the same 192 KiB for worker threads).
constexpr uintptr_t kStackHeadroom = 192 * 1024;

// JS stack of a greenlet thread, as V8's default --stack-size gives the main
// thread: the limit sits this far below the stack's top when the stack is
// large enough (rule 2), else kStackHeadroom above its end.
constexpr uintptr_t kJsStackBytes = 984 * 1024;

// Set once by install() on the main thread, never freed: heap-allocated so
// that no static destructor runs at process exit while greenlet threads are
// still suspended.
v8::Isolate* g_isolate = nullptr;
v8::Global<v8::Context>* g_context = nullptr;
v8::Global<v8::Function>* g_runner = nullptr;
v8::Global<v8::Function>* g_drain = nullptr;

// A napi_value is a v8::Local's slot pointer in Node's N-API implementation
// (v8impl::V8LocalValueFromJsValue copies it the same way). Valid only for
// the duration of the napi call that received it.
v8::Local<v8::Value> FromNapi(napi_value value) {
  static_assert(sizeof(napi_value) == sizeof(v8::Local<v8::Value>), "napi_value is not a v8::Local");
  v8::Local<v8::Value> local;
  std::memcpy(static_cast<void*>(&local), &value, sizeof value);
  return local;
}

int Fail(char* err, size_t err_len, const char* message) {
  std::snprintf(err, err_len, "%s", message);
  return 1;
}

// Rule 5. V8 11.3 (Node 20) has no such data; 14.x renamed the calls.
#if V8_MAJOR_VERSION >= 14
using ContinuationData = v8::Local<v8::Data>;
ContinuationData GetContinuationData(v8::Isolate* isolate) { return isolate->GetContinuationPreservedEmbedderDataV2(); }
void SetContinuationData(v8::Isolate* isolate, ContinuationData data) { isolate->SetContinuationPreservedEmbedderDataV2(data); }
#elif V8_MAJOR_VERSION >= 12
using ContinuationData = v8::Local<v8::Value>;
ContinuationData GetContinuationData(v8::Isolate* isolate) { return isolate->GetContinuationPreservedEmbedderData(); }
void SetContinuationData(v8::Isolate* isolate, ContinuationData data) { isolate->SetContinuationPreservedEmbedderData(data); }
#else
using ContinuationData = v8::Local<v8::Value>;
ContinuationData GetContinuationData(v8::Isolate* isolate) { return v8::Undefined(isolate); }
void SetContinuationData(v8::Isolate*, ContinuationData) {}
#endif

// Rule 3. Returns false if the drain call was terminated or threw; with
// `rethrow` the exception stays pending for the JS caller.
bool DrainInterrupts(v8::Isolate* isolate, bool rethrow) {
  v8::HandleScope scope(isolate);
  v8::Local<v8::Context> context = g_context->Get(isolate);
  v8::TryCatch try_catch(isolate);
  if (g_drain->Get(isolate)->Call(context, v8::Undefined(isolate), 0, nullptr).IsEmpty()) {
    if (rethrow) try_catch.ReThrow();
    return false;
  }
  return true;
}

// The calling greenlet thread's stack, [t_stack_low, t_stack_high), and the
// JS stack limit set in it, once SetStackLimitInsideThisStack has run on it
// (0 on other threads).
thread_local uintptr_t t_stack_low = 0;
thread_local uintptr_t t_stack_high = 0;
thread_local uintptr_t t_stack_limit = 0;

// Rule 2, for the calling (greenlet) thread.
void SetStackLimitInsideThisStack(v8::Isolate* isolate) {
  uintptr_t low = 0;
  uintptr_t size = 0;
#if defined(__APPLE__)
  pthread_t self = pthread_self();
  size = pthread_get_stacksize_np(self);
  low = reinterpret_cast<uintptr_t>(pthread_get_stackaddr_np(self)) - size;
#else
  pthread_attr_t attr;
  if (pthread_getattr_np(pthread_self(), &attr) == 0) {
    void* addr = nullptr;
    size_t bytes = 0;
    if (pthread_attr_getstack(&attr, &addr, &bytes) == 0) {
      low = reinterpret_cast<uintptr_t>(addr);
      size = bytes;
    }
    pthread_attr_destroy(&attr);
  }
#endif
  // Without the bounds V8's default stays; the Rust side creates threads
  // whose stack is large enough for it.
  if (low != 0) {
    uintptr_t high = low + size;
    uintptr_t limit = size > kJsStackBytes + kStackHeadroom ? high - kJsStackBytes : low + kStackHeadroom;
    isolate->SetStackLimit(limit);
    t_stack_low = low;
    t_stack_high = high;
    t_stack_limit = limit;
  }
}

// Rule 7.
void IgnoreStraySigprof() {
  struct sigaction current {};
  if (sigaction(SIGPROF, nullptr, &current) != 0) return;
  if ((current.sa_flags & SA_SIGINFO) == 0 && current.sa_handler == SIG_DFL) std::signal(SIGPROF, SIG_IGN);
}

}  // namespace

extern "C" {

// The Node module ABI these headers describe.
int greenthread_shim_node_abi() { return NODE_MODULE_VERSION; }

// Called once, on the main thread, inside a napi call. `runner` is called
// with no arguments on a greenlet thread each time it starts a greenlet and
// returns the slot to give the baton to when that greenlet is done; `drain`
// is a JS function that does nothing (rule 3). Returns 0, or 1 with a message
// in `err`.
int greenthread_shim_install(napi_value runner, napi_value drain, char* err, size_t err_len) {
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  if (isolate == nullptr) return Fail(err, err_len, "no current isolate");
  if (g_isolate != nullptr) return Fail(err, err_len, "already installed in this process");
  // Node keeps V8's embedder ABI stable within a major (that is what its
  // module ABI promises), so major.minor must match; the build and patch
  // numbers may move between Node releases.
  char compiled[32];
  std::snprintf(compiled, sizeof compiled, "%d.%d.", V8_MAJOR_VERSION, V8_MINOR_VERSION);
  const char* running = v8::V8::GetVersion();
  if (std::strncmp(running, compiled, std::strlen(compiled)) != 0) {
    std::snprintf(err, err_len, "built for V8 %s*, running V8 %s", compiled, running);
    return 1;
  }
  // Node's main thread holds a Locker; without it Unlocker is invalid.
  if (!v8::Locker::IsLocked(isolate)) return Fail(err, err_len, "the isolate is not locked by a v8::Locker");
  v8::Local<v8::Value> runner_value = FromNapi(runner);
  v8::Local<v8::Value> drain_value = FromNapi(drain);
  if (!runner_value->IsFunction() || !drain_value->IsFunction()) {
    return Fail(err, err_len, "runner and drain must be functions");
  }
  IgnoreStraySigprof();
  g_isolate = isolate;
  g_context = new v8::Global<v8::Context>(isolate, isolate->GetCurrentContext());
  g_runner = new v8::Global<v8::Function>(isolate, runner_value.As<v8::Function>());
  g_drain = new v8::Global<v8::Function>(isolate, drain_value.As<v8::Function>());
  return 0;
}

// Gives up the V8 lock around `handoff(data)`, which gives the baton to
// another thread and blocks until this thread is given it back. Called by the
// baton holder from inside a JS call. Returns 0 once this thread holds the
// lock again, or 1 without switching if draining interrupts raised (the
// exception is pending for the JS caller).
int greenthread_shim_switch(int on_main_thread, void (*handoff)(void*), void* data) {
  v8::Isolate* isolate = g_isolate;
  if (!DrainInterrupts(isolate, true)) return 1;
  v8::HandleScope scope(isolate);
  ContinuationData continuation = GetContinuationData(isolate);  // rule 5
  if (!on_main_thread) isolate->Exit();                          // rule 1
  {
    v8::Unlocker unlocker(isolate);  // archives this thread's V8 state
    handoff(data);                   // rule 4: no V8 in here
#if V8_MAJOR_VERSION < 12
    // Rule 6: entered before the relock, which needs it on 11.x.
    if (!on_main_thread) isolate->Enter();
#endif
  }  // relocked: V8 restored this thread's state
#if V8_MAJOR_VERSION < 12
  // Rule 6: entering without the lock left the previous holder's thread id
  // in place; entering again with it sets this thread's.
  if (!on_main_thread) isolate->Exit();
#endif
  isolate->Enter();  // rule 1
  if (on_main_thread) isolate->Exit();
  SetContinuationData(isolate, continuation);
  return 0;
}

// Runs one greenlet on the calling greenlet thread, which was given the
// baton: lock, enter, call the runner, drain, exit, unlock. Returns the slot
// the runner named (who gets the baton next), or 0 (the main thread) if the
// runner failed, which it is written never to do. The thread still holds the
// baton: the caller hands it on. The Locker is per greenlet, so an idle
// thread has no V8 state (every GC, young ones too, walks the state of every
// thread that has one).
// Bytes of JS stack left to the calling greenlet thread (its stack pointer
// above the JS stack limit), or -1 when it is not running on its own stack:
// a WebAssembly JSPI (`WebAssembly.promising`) stack, whose switching state
// V8 keeps per isolate, not per thread. Other threads: INTPTR_MAX.
intptr_t greenthread_shim_stack_room() {
  if (t_stack_low == 0) return INTPTR_MAX;
  volatile char probe = 0;
  auto here = reinterpret_cast<uintptr_t>(&probe);
  if (here < t_stack_low || here >= t_stack_high) return -1;
  if (here < t_stack_limit) return 0;
  return static_cast<intptr_t>(here - t_stack_limit);
}

void greenthread_shim_ignore_stray_sigprof() { IgnoreStraySigprof(); }

int greenthread_shim_run() {
  v8::Isolate* isolate = g_isolate;
  int next = 0;
  {
    v8::Locker locker(isolate);
    v8::Isolate::Scope isolate_scope(isolate);
    SetStackLimitInsideThisStack(isolate);
    v8::HandleScope handle_scope(isolate);
    v8::Local<v8::Context> context = g_context->Get(isolate);
    v8::Context::Scope context_scope(context);
    SetContinuationData(isolate, v8::Undefined(isolate));  // rule 5
    {
      v8::TryCatch try_catch(isolate);
      v8::Local<v8::Value> result;
      if (g_runner->Get(isolate)->Call(context, v8::Undefined(isolate), 0, nullptr).ToLocal(&result) &&
          result->IsInt32()) {
        next = result.As<v8::Int32>()->Value();
      } else if (!try_catch.HasTerminated()) {
        std::fprintf(stderr, "greenthread/sync: internal error: the greenlet runner did not return a slot\n");
      }
    }
    // Nobody is left to rethrow to: a termination ends here.
    DrainInterrupts(isolate, false);
  }  // Isolate::Exit, then unlock (rule 1)
  return next;
}

}  // extern "C"
