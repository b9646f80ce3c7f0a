//! The multi-mode design's own invocations, as it wrote them:
//! `ferry -s PORT` runs a hub on that port, and
//! `ferry -c NAME SERVER_IP SERVER_PORT UDP_PORT TCP_PORT` opens a shell as
//! NAME against that hub, with TCP_PORT as the port other peers fetch from
//! and UDP_PORT the one discovery answers come back to.
//! They are rewritten into the modern subcommands before parsing, so they
//! mean exactly what those do.

use std::ffi::OsString;

/// `args` (the program name first) with a multi-mode invocation turned into
/// its modern form; anything else unchanged.
pub(crate) fn rewrite(args: Vec<OsString>) -> Vec<OsString> {
    let words: Option<Vec<&str>> = args.iter().map(|a| a.to_str()).collect();
    let Some(words) = words else { return args };
    let port = |text: &str| text.parse::<u16>().ok();
    let modern: Vec<String> = match words.as_slice() {
        [program, "-s", listen] if port(listen).is_some() => vec![
            program.to_string(),
            "serve".into(),
            "--listen".into(),
            format!("0.0.0.0:{listen}"),
            // That design let anyone who connected pick a name.
            "--admission".into(),
            "open".into(),
        ],
        [program, "-c", name, ip, hub_port, udp, tcp]
            if port(hub_port).is_some() && port(udp).is_some() && port(tcp).is_some() =>
        {
            let host = if ip.contains(':') && !ip.starts_with('[') {
                format!("[{ip}]")
            } else {
                ip.to_string()
            };
            vec![
                program.to_string(),
                "--hub".into(),
                format!("{host}:{hub_port}"),
                format!("--name={name}"),
                "shell".into(),
                "--peer-port".into(),
                tcp.to_string(),
                "--udp-port".into(),
                udp.to_string(),
            ]
        }
        _ => return args,
    };
    modern.into_iter().map(OsString::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<OsString> {
        line.split(' ').map(OsString::from).collect()
    }

    #[test]
    fn the_multi_mode_invocations_become_subcommands() {
        assert_eq!(
            rewrite(words("ferry -s 9000")),
            words("ferry serve --listen 0.0.0.0:9000 --admission open")
        );
        assert_eq!(
            rewrite(words("ferry -c alice 10.0.0.1 9000 9001 9002")),
            words("ferry --hub 10.0.0.1:9000 --name=alice shell --peer-port 9002 --udp-port 9001")
        );
        assert_eq!(
            rewrite(words("ferry -c alice ::1 9000 9001 9002")),
            words("ferry --hub [::1]:9000 --name=alice shell --peer-port 9002 --udp-port 9001")
        );
        for unchanged in [
            "ferry -s",
            "ferry -s notaport",
            "ferry ls",
            "ferry -c a b c d e",
        ] {
            assert_eq!(rewrite(words(unchanged)), words(unchanged), "{unchanged}");
        }
    }
}
