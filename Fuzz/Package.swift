// swift-tools-version:6.0
// The libFuzzer targets of Spool, kept out of the root package so that the normal build and
// `swift test` never see them. Build and run through `scripts/fuzz.sh`.
import PackageDescription

let package = Package(
    name: "spool-fuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "spool", path: ".."),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        // Declares libFuzzer's LLVMFuzzerRunDriver (the library itself comes with -sanitize=fuzzer).
        .systemLibrary(name: "CLibFuzzer"),
        // One executable for every target: `spool-fuzz <target> [libFuzzer options] [corpus dirs]`.
        // Besides main.swift, its sources are symlinks to the test files that hold the targets
        // (Tests/*/FuzzCorpusTests.swift); SPOOL_FUZZ leaves their test half out.
        .executableTarget(
            name: "spool-fuzz",
            dependencies: [
                "CLibFuzzer",
                .product(name: "SpoolWire", package: "spool"),
                .product(name: "SpoolStorage", package: "spool"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: [.define("SPOOL_FUZZ")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
