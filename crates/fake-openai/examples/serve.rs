//! Runs the fake OpenAI-compatible server by hand, to try a client against
//! it (`curl`, `flowrl openai chat`…).
//!
//! ```sh
//! cargo run -p flowrl-fake-openai --example serve -- [SECONDS] [FAULT…]
//! ```
//!
//! Prints the base URL on the first line, then serves for SECONDS (default
//! 60) or until standard input closes, whichever comes first. Each FAULT
//! (`500`, `429`, `429:RETRY_AFTER`, `malformed`, `drop`, `close`,
//! `delay:MILLIS`, or any other status code) is applied to the next
//! completion request, in order.

use std::io::Read;
use std::sync::mpsc;
use std::time::Duration;

use flowrl_fake_openai::{FakeServer, Fault};

fn parse_fault(text: &str) -> Result<Fault, String> {
    let (name, arg) = text
        .split_once(':')
        .map_or((text, None), |(n, a)| (n, Some(a)));
    match (name, arg) {
        ("500", None) => Ok(Fault::ServerError),
        ("429", retry_after) => Ok(Fault::RateLimited {
            retry_after: retry_after.map(str::to_string),
        }),
        ("malformed", None) => Ok(Fault::MalformedJson),
        ("drop", None) => Ok(Fault::DropConnection),
        ("close", None) => Ok(Fault::CloseWithoutResponse),
        ("delay", Some(ms)) => ms
            .parse()
            .map(|ms| Fault::Delay(Duration::from_millis(ms)))
            .map_err(|_| format!("bad delay `{ms}`")),
        (code, None) => code
            .parse::<u16>()
            .ok()
            .filter(|c| (400..600).contains(c))
            .map(|status| Fault::Status {
                status,
                message: format!("injected {status}"),
            })
            .ok_or_else(|| format!("unknown fault `{text}`")),
        _ => Err(format!("unknown fault `{text}`")),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = match args.next() {
        Some(s) => s.parse().map_err(|_| format!("bad SECONDS `{s}`"))?,
        None => 60,
    };
    let faults = args
        .map(|a| parse_fault(&a))
        .collect::<Result<Vec<_>, _>>()?;
    let server = FakeServer::start()?;
    server.push_faults(faults);
    println!("{}", server.base_url());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        let _ = tx.send(());
    });
    let _ = rx.recv_timeout(Duration::from_secs(seconds));
    for r in server.requests() {
        eprintln!("{} {} fault={:?}", r.method, r.path, r.fault);
    }
    Ok(())
}
