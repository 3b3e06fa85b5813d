//! Programs beside the gateway: the demo ([`demo`]), the whoami test app
//! ([`whoami`]) and the benchmark seeder ([`bench_seed`]).

pub mod bench_seed;
pub mod demo;
pub mod whoami;
