// swift-tools-version:6.0
import Foundation
import PackageDescription

// libFuzzer targets over LeakVisor's parsers of guest data. Built only by scripts/fuzz.sh
// (release, -sanitize=fuzzer, -enable-testing); the main package's `swift build` never sees it.

/// SwiftPM names a path dependency after its directory (the checkout or worktree's name).
let leakVisor = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()

let package = Package(
    name: "LeakVisorFuzz",
    platforms: [.macOS(.v13)],
    dependencies: [
        .package(path: leakVisor.path),
    ],
    targets: [
        // One binary with every target; FUZZ_TARGET picks the one a run exercises.
        .executableTarget(
            name: "leakvisor-fuzz",
            dependencies: [.product(name: "LeakVisorGuestParsers", package: leakVisor.lastPathComponent.lowercased())]),
    ],
    swiftLanguageModes: [.v6]
)
