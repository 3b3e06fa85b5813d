//! Programs beside the gateway: the demo ([`demo`]), the whoami test app
//! ([`whoami`]), the benchmark seeder ([`bench_seed`]), and the man page
//! and completions for the Debian package ([`assets`]).

pub mod assets;
pub mod bench_seed;
pub mod demo;
pub mod whoami;
