//! Test data: incompressible bytes from BLAKE3's extendable output, which is
//! several times faster than /dev/urandom and needs no extra crate.

use std::fs;
use std::io::{BufWriter, Read, Write};
use std::path::PathBuf;

/// Arguments of `ferry-bench mkfiles`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Where the files go (created if missing).
    dir: PathBuf,
    /// How many files.
    #[arg(long, default_value_t = 1)]
    count: usize,
    /// Bytes per file.
    #[arg(long)]
    size: u64,
    /// File names are PREFIX followed by a six-digit number.
    #[arg(long, default_value = "file-")]
    prefix: String,
    /// Spread the files over this many subfolders (0: none).
    #[arg(long, default_value_t = 0)]
    subdirs: usize,
    /// Seed, so two runs can make different data.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<()> {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&args.seed.to_le_bytes());
    let mut bytes = hasher.finalize_xof();
    let mut buf = vec![0u8; 1 << 20];
    for i in 0..args.count {
        let dir = match args.subdirs {
            0 => args.dir.clone(),
            n => args.dir.join(format!("dir-{:03}", i % n)),
        };
        fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{}{i:06}", args.prefix));
        let mut out = BufWriter::new(fs::File::create(&path)?);
        let mut left = args.size;
        while left > 0 {
            let n = usize::try_from(left).map_or(buf.len(), |l| l.min(buf.len()));
            bytes.read_exact(&mut buf[..n])?;
            out.write_all(&buf[..n])?;
            left -= n as u64;
        }
        out.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn makes_distinct_files_of_the_asked_size() {
        let dir = tempfile::tempdir().unwrap();
        let args = Args {
            dir: dir.path().to_owned(),
            count: 3,
            size: 3000,
            prefix: "f-".into(),
            subdirs: 2,
            seed: 7,
        };
        run(&args).unwrap();
        let a = fs::read(dir.path().join("dir-000/f-000000")).unwrap();
        let b = fs::read(dir.path().join("dir-001/f-000001")).unwrap();
        let c = fs::read(dir.path().join("dir-000/f-000002")).unwrap();
        assert_eq!((a.len(), b.len(), c.len()), (3000, 3000, 3000));
        assert!(a != b && b != c);
    }
}
