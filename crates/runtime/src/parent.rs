//! Tying a child process's life to its parent's: an executor's child must
//! not outlive the process that feeds it, even while its JS thread is stuck
//! in a task and cannot notice its pipe closing. The OS-specific part of
//! this crate outside `net`, chosen here by `cfg`.

use std::io;

/// Makes the calling process die (SIGKILL) once the process `parent` is
/// gone, or at once if it is gone already.
///
/// Linux: `PR_SET_PDEATHSIG`, which fires when the thread that forked this
/// process exits (Node forks from its main thread, which lives as long as
/// the process). Elsewhere: a watcher thread checks the parent id twice a
/// second (a dead parent's children are adopted by another process).
pub fn die_with_parent(parent: u32) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: prctl with PR_SET_PDEATHSIG takes a signal number and
        // changes only this process's attributes.
        if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // The parent may have died before the call.
        kill_self_unless_child_of(parent);
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        kill_self_unless_child_of(parent);
        std::thread::Builder::new()
            .name("parent-watch".into())
            .spawn(move || loop {
                std::thread::sleep(std::time::Duration::from_millis(500));
                kill_self_unless_child_of(parent);
            })
            .map(drop)
    }
}

fn kill_self_unless_child_of(parent: u32) {
    // SAFETY: getppid, getpid and kill have no preconditions.
    unsafe {
        if libc::getppid() as u32 != parent {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
    }
}
