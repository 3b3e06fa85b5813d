//! The proxy workers: `server.workers` OS threads, each running a tokio
//! current-thread runtime that serves every main listener through a
//! socket of its own (the model of nginx, Envoy and Pingora).
//!
//! Why: on one multi-thread runtime, a connection's tasks (hyper's
//! server connection, the upstream connection's driver) move between
//! threads by work stealing, and every wake-up of a task parked on
//! another thread is a cross-thread signal. Here a connection is
//! accepted, served and forwarded on one thread, with the upstream
//! connections it uses ([`crate::http::upstream`] keeps a pool per
//! worker) driven by the same thread.
//!
//! TCP listeners (plain and TLS) are bound once per worker with
//! `SO_REUSEADDR` and `SO_REUSEPORT` on the same address: the kernel
//! spreads new connections over the workers' accept queues (by a hash of
//! the connection's addresses, socket(7)). A Unix socket cannot be bound
//! twice at one path, so each worker gets a `try_clone()` of the one
//! listener: the workers then share one accept queue, and whichever
//! worker is waiting takes the next connection.
//!
//! Background work (change feeds, housekeeping, the back-channel sender,
//! rechecks) and the admin listener stay on the main multi-thread
//! runtime; the state is shared through an `Arc`, the connection cap
//! (`Limits::connections`) and the shutdown signal are shared by all.

use std::cell::Cell;
use std::net::SocketAddr;
use std::path::PathBuf;

use tokio::net::{TcpListener, TcpSocket, UnixListener};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::http::listen::{self, Bound, Dispatch, Limits, TlsSetup};

/// The accept backlog of each worker's socket (tokio's own for
/// `TcpListener::bind`).
const BACKLOG: u32 = 1024;

thread_local! {
    /// The worker this thread is, if it is one.
    static WORKER: Cell<Option<usize>> = const { Cell::new(None) };
}

/// The index of the proxy worker running the calling thread, or `None` on
/// any other thread (the main runtime, tests).
pub fn current() -> Option<usize> {
    WORKER.with(Cell::get)
}

/// A main listener, bound once per worker, before it is served.
pub enum Listener {
    /// TCP, optionally with TLS: one `SO_REUSEPORT` socket per worker.
    Tcp(Vec<std::net::TcpListener>, Option<TlsSetup>),
    /// A Unix socket: one listener, cloned for each worker.
    Unix(std::os::unix::net::UnixListener, bool, PathBuf),
}

/// Binds `addr` once for each of `workers` workers with `SO_REUSEPORT`;
/// returns the sockets and the address bound (port 0 resolved).
///
/// With `SO_REUSEPORT`, a second process of the same user could bind the
/// address too and silently share the traffic (a second vestibule started
/// by mistake). So the address is first bound without it: in use by
/// anyone, that fails as it always did, and startup stops.
pub fn bind_tcp(
    addr: SocketAddr,
    workers: usize,
) -> std::io::Result<(Vec<std::net::TcpListener>, SocketAddr)> {
    let probe = std::net::TcpListener::bind(addr)?;
    let addr = probe.local_addr()?;
    drop(probe);
    let sockets = (0..workers.max(1))
        .map(|_| {
            let s = match addr {
                SocketAddr::V4(_) => TcpSocket::new_v4()?,
                SocketAddr::V6(_) => TcpSocket::new_v6()?,
            };
            s.set_reuseaddr(true)?;
            s.set_reuseport(true)?;
            s.bind(addr)?;
            // `listen` registers with the calling runtime; `into_std`
            // takes it off again, for the worker to register with its own.
            s.listen(BACKLOG)?.into_std()
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    Ok((sockets, addr))
}

/// Starts `workers` worker threads serving `listeners` until `shutdown`
/// turns true. Each handle ends when its worker has drained its
/// connections (see [`listen::serve`]).
pub fn spawn(
    workers: usize,
    listeners: Vec<Listener>,
    dispatch: &Dispatch,
    limits: &Limits,
    shutdown: &watch::Receiver<bool>,
) -> Result<Vec<JoinHandle<()>>, String> {
    let workers = workers.max(1);
    // Each worker's share, made here so an error stops startup.
    let mut shares: Vec<Vec<(std::net::TcpListener, Option<TlsSetup>)>> =
        (0..workers).map(|_| Vec::new()).collect();
    let mut unix: Vec<Vec<(std::os::unix::net::UnixListener, bool, PathBuf)>> =
        (0..workers).map(|_| Vec::new()).collect();
    for l in listeners {
        match l {
            Listener::Tcp(sockets, tls) => {
                for (share, s) in shares.iter_mut().zip(sockets) {
                    share.push((s, tls.clone()));
                }
            }
            Listener::Unix(l, trusted, path) => {
                for share in &mut unix {
                    let clone = l
                        .try_clone()
                        .map_err(|e| format!("cannot share {}: {e}", path.display()))?;
                    share.push((clone, trusted, path.clone()));
                }
            }
        }
    }
    let mut handles = Vec::with_capacity(workers);
    for (index, (tcp, unix)) in shares.into_iter().zip(unix).enumerate() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start proxy worker {index}: {e}"))?;
        // Registered with the worker's own reactor.
        let bound = {
            let _entered = runtime.enter();
            let mut bound = Vec::new();
            for (s, tls) in tcp {
                bound.push(Bound::Tcp(
                    TcpListener::from_std(s).map_err(|e| e.to_string())?,
                    tls,
                ));
            }
            for (l, trusted, path) in unix {
                l.set_nonblocking(true).map_err(|e| e.to_string())?;
                bound.push(Bound::Unix(
                    UnixListener::from_std(l).map_err(|e| e.to_string())?,
                    trusted,
                    path,
                ));
            }
            bound
        };
        let (done, finished) = oneshot::channel::<()>();
        let dispatch = dispatch.clone();
        let limits = limits.clone();
        let shutdown = shutdown.clone();
        std::thread::Builder::new()
            .name(format!("vestibule-w{index}"))
            .spawn(move || {
                WORKER.with(|w| w.set(Some(index)));
                runtime.block_on(async move {
                    let served: Vec<_> = bound
                        .into_iter()
                        .map(|b| {
                            tokio::spawn(listen::serve(
                                b,
                                dispatch.clone(),
                                limits.clone(),
                                shutdown.clone(),
                            ))
                        })
                        .collect();
                    for s in served {
                        let _ = s.await;
                    }
                });
                // Whatever is left (idle upstream connections) ends with
                // the runtime, before the main thread hears of it.
                drop(runtime);
                let _ = done.send(());
            })
            .map_err(|e| format!("cannot start proxy worker {index}: {e}"))?;
        handles.push(tokio::spawn(async move {
            let _ = finished.await;
        }));
    }
    Ok(handles)
}
