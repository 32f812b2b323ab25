//! The code that builds the web app into the binary (the `embedded-web` feature): build.rs
//! includes this file, and `web`'s tests compile it too, so the listing they check is the one
//! that is embedded.
//!
//! It writes `pub static FILES: &[EmbeddedFile]` with one `include_bytes!` per file: rustc
//! then tracks each file, so a rebuilt web app is re-embedded, and build.rs watches the
//! folder for files added or removed.

use std::io;
use std::path::{Path, PathBuf};

/// Every file under `dir`, as (path relative to `dir` with `/` separators, file), sorted so
/// the generated code is the same for the same folder.
pub fn list(dir: &Path) -> io::Result<Vec<(String, PathBuf)>> {
    if !dir.join("index.html").is_file() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "no index.html in {}: build the web app first (trunk build --release)",
                dir.display()
            ),
        ));
    }
    let mut files = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder)? {
            let entry = entry?;
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                folders.push(path);
                continue;
            }
            let relative = path
                .strip_prefix(dir)
                .map_err(|e| io::Error::other(e.to_string()))?
                .components()
                .map(|part| {
                    part.as_os_str().to_str().map(str::to_owned).ok_or_else(|| {
                        io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("{} is not a UTF-8 file name", path.display()),
                        )
                    })
                })
                .collect::<io::Result<Vec<String>>>()?
                .join("/");
            files.push((relative, path));
        }
    }
    files.sort();
    Ok(files)
}

/// The Rust source of the embedded file table for the web app in `dir`.
pub fn generate(dir: &Path) -> io::Result<String> {
    let dir = dir.canonicalize()?;
    let mut code = String::from("pub static FILES: &[crate::web::EmbeddedFile] = &[\n");
    for (path, file) in list(&dir)? {
        let file = file.to_str().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is not a UTF-8 path", file.display()),
            )
        })?;
        // `{:?}` of a str is a valid Rust string literal, escapes and all.
        code.push_str(&format!(
            "    crate::web::EmbeddedFile {{ path: {path:?}, bytes: include_bytes!({file:?}) }},\n"
        ));
    }
    code.push_str("];\n");
    Ok(code)
}
