//! Platform and architecture, normalised to the server's closed sets (DESIGN §5).

/// The platform this crate was compiled for.
pub fn detect_platform() -> &'static str {
    if cfg!(target_os = "windows") {
        "windows"
    } else if cfg!(target_os = "macos") {
        "macos"
    } else if cfg!(target_os = "android") {
        "android"
    } else if cfg!(target_os = "ios") {
        "ios"
    } else if cfg!(target_os = "linux") {
        "linux"
    } else if cfg!(target_family = "wasm") {
        "web"
    } else {
        "other"
    }
}

/// The architecture this crate was compiled for.
pub fn detect_arch() -> &'static str {
    if cfg!(target_arch = "x86_64") {
        "x86_64"
    } else if cfg!(target_arch = "aarch64") {
        "aarch64"
    } else if cfg!(target_arch = "x86") {
        "x86"
    } else if cfg!(target_arch = "arm") {
        "armv7"
    } else if cfg!(target_arch = "wasm32") {
        "wasm32"
    } else {
        "other"
    }
}

/// Linux distributions as an OS name names them (Node's Sentry SDK sends `Ubuntu`).
const LINUXES: &[&str] = &[
    "ubuntu",
    "debian",
    "fedora",
    "centos",
    "red hat",
    "rhel",
    "alpine",
    "arch",
    "opensuse",
    "suse",
    "gentoo",
    "mint",
    "manjaro",
    "amazon linux",
    "raspbian",
    "rocky",
    "almalinux",
    "nixos",
];

/// Maps a platform or OS name (`darwin`, `win32`, `Windows NT`, `iPadOS`, `Ubuntu`, or one of
/// the closed set) to the closed set. The server maps Sentry's `os.name` with it too.
pub fn normalise_platform(value: &str) -> &'static str {
    let v = value.trim().to_ascii_lowercase();
    match v.as_str() {
        "windows" => "windows",
        "macos" | "darwin" | "mac" | "osx" | "macosx" | "mac os" | "mac os x" | "os x" => "macos",
        "linux" => "linux",
        "android" => "android",
        "ios" | "ipados" | "iphone os" | "iphoneos" => "ios",
        "web" | "emscripten" | "wasi" => "web",
        _ if v.starts_with("win") || v.starts_with("cygwin") || v.starts_with("msys") => "windows",
        _ if v.contains("linux") || LINUXES.iter().any(|d| v.starts_with(d)) => "linux",
        _ => "other",
    }
}

/// Maps an architecture name (`amd64`, `arm64`, `arm64-v8a`, `i686`, or one of the closed set)
/// to the closed set.
pub fn normalise_arch(value: &str) -> &'static str {
    let v = value.trim().to_ascii_lowercase();
    match v.as_str() {
        "x86_64" | "amd64" | "x64" | "x86-64" | "em64t" => "x86_64",
        "aarch64" | "arm64" | "arm64e" | "arm64-v8a" | "armv8" | "armv8l" => "aarch64",
        "x86" | "i386" | "i486" | "i586" | "i686" | "ia32" => "x86",
        "armhf" | "arm" | "armeabi-v7a" => "armv7",
        "universal" => "universal",
        _ if v.starts_with("armv7") => "armv7",
        _ if v.starts_with("wasm") => "wasm32",
        _ => "other",
    }
}
