//! The one integration-test binary: every test boots the real `vestibule`
//! executable (or the library on a real socket) on loopback, with a real
//! upstream. One binary keeps link time down.

#![allow(unreachable_pub, dead_code)]

mod accounts;
mod admin_cli;
mod advisories;
mod assertions;
mod check_cli;
mod devices;
mod durability;
mod frontends;
mod identity;
mod limits;
mod pages;
mod postgres;
mod proxy;
mod readme;
mod redirects;
mod service;
mod support;
mod verify;
