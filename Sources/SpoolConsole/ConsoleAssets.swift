/// The console's static files, compiled into the binary (no files to install, nothing fetched).
enum ConsoleAssets {
    /// Path → (content type, bytes) of every asset the listener serves.
    static let files: [String: (contentType: String, bytes: [UInt8])] = [
        "/": ("text/html; charset=utf-8", PackageResources.index_html),
        "/assets/console.js": ("text/javascript; charset=utf-8", PackageResources.console_js),
        "/assets/console.css": ("text/css; charset=utf-8", PackageResources.console_css),
    ]
}
