//! End-to-end tests: a real hub on loopback, real clients, real files, TLS
//! unless a test needs to speak raw bytes. One test binary (see STYLE.md).

mod access;
mod authority;
mod burst;
mod cli;
mod damaged;
mod discovery;
mod disk_full;
mod drives;
mod everyday;
mod flood;
mod handles;
mod hostile;
mod hostile_peers;
mod http_api;
mod malicious_hub;
mod pages;
mod peers;
mod peers_cli;
mod resume;
mod safety;
mod shell;
mod shutdown;
mod store;
mod support;
mod web_page;
mod webdav;
