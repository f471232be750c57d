// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "LeakVisor",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "leakvisor", targets: ["leakvisor"]),
        // The parsers and walkers of guest data, for the libFuzzer targets in Fuzz/ (not used by the tool itself).
        .library(name: "LeakVisorGuestParsers", targets: [
            "GuestMemory", "X86", "BTF", "DebugInfo", "Introspection", "Reachability", "Devices", "AllocationLedger",
            "AllocationTracing", "LeakAnalysis", "Control",
        ]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", exact: "2.4.1"),
    ],
    targets: [
        // Thin unsafe layer: linux/kvm.h constants and non-variadic ioctl wrappers. No logic.
        .target(name: "CKVM"),
        // Owners of /dev/kvm, the VM and vCPU file descriptors; decoded exits; typed errors.
        .target(name: "KVM", dependencies: ["CKVM"]),
        // The KVM side of a VM as values: VCPUState and VMState captured from and restored into KVM,
        // with a versioned, checksummed, bounds-checked binary encoding (the base of snapshots).
        .target(name: "KVMState", dependencies: ["KVM", "CKVM", "BinaryCoding"]),
        // Little-endian records over untrusted bytes: a writer, a bounds-checked reader, CRC-32.
        .target(name: "BinaryCoding"),
        // Guest-physical address types, mmap'd RAM regions, bounds-checked access.
        .target(name: "GuestMemory"),
        // The snapshot file: a checked header naming what it fits, the KVM and device state, and the
        // guest's RAM stored sparse and mapped back copy-on-write; written atomically.
        .target(name: "SnapshotFile", dependencies: [
            "GuestMemory", "Devices", "BinaryCoding", "CLibcrypto",
        ]),
        // Thin unsafe layer over OpenSSL's libcrypto (libssl-dev): SHA-256 for snapshot keys. No logic.
        .systemLibrary(name: "CLibcrypto"),
        // x86-64 as the guest's CPU sees it: virtual addresses, registers, vCPU snapshots, page tables,
        // the walker and translation, address spaces and user-mode access rights.
        .target(name: "X86", dependencies: ["GuestMemory"]),
        // BPF Type Format: the kernel's own description of its structures (pure parsing).
        .target(name: "BTF"),
        // Kernel loaders (ELF vmlinux, bzImage), boot_params, e820, command line, page tables.
        .target(name: "Boot", dependencies: ["GuestMemory"]),
        // Emulated devices on port and MMIO buses: 16550 UART, CMOS/RTC, i8042, debug exit port.
        .target(name: "Devices"),
        // Thin unsafe layer over elfutils (libelf, libdw, libdwfl). No logic.
        .target(name: "CElfDW", linkerSettings: [.linkedLibrary("elf"), .linkedLibrary("dw")]),
        // ELF symbol tables, DWARF lines and CFI unwinding through libdw, fed by any memory reader.
        .target(name: "DebugInfo", dependencies: ["CElfDW"]),
        // What the tools above a backend need from a guest: pause/read/written pages, and traps.
        .target(name: "GuestInterface", dependencies: ["GuestMemory", "X86"]),
        // The machine: builder, vCPU loop, host policy (PVM vs VMX/SVM), emulation fix-ups.
        .target(name: "VMM", dependencies: ["KVM", "GuestMemory", "Boot", "Devices", "X86", "GuestInterface", "KVMState", "SnapshotFile"]),
        // Reading a Linux guest the way it sees itself: kernel symbols, tasks, VMAs, page cache, stacks.
        .target(name: "Introspection", dependencies: ["GuestMemory", "X86", "BTF", "DebugInfo"]),
        // Conservative reachability: roots of a guest process, marking and leak classes.
        .target(name: "Reachability", dependencies: ["GuestMemory", "X86", "Introspection", "DebugInfo"]),
        // The allocation ledger outside the guest: live blocks per address space, findings, stacks.
        .target(name: "AllocationLedger", dependencies: ["X86", "Reachability"]),
        // Tracing room: allocator breakpoints (site finder, prologue emulator, arming, breakpoint
        // table), the pure call tracker, and the trap handler that feeds the ledger.
        .target(name: "AllocationTracing", dependencies: [
            "GuestMemory", "X86", "GuestInterface", "Introspection", "DebugInfo", "Reachability", "AllocationLedger",
        ]),
        // Analysis room: the reachability scanner over any `InspectableGuest`, and leak reports.
        .target(name: "LeakAnalysis", dependencies: [
            "GuestMemory", "X86", "GuestInterface", "Introspection", "DebugInfo", "Reachability", "AllocationLedger",
        ]),
        // Thin unsafe layer over zlib (gzip for pprof profiles). No logic.
        .target(name: "CZlib", linkerSettings: [.linkedLibrary("z")]),
        // A `LeakReport` in the formats other tools read: valgrind XML, SARIF, pprof, folded stacks,
        // self-contained HTML, besides our text and JSON. Pure: no guest, no machine.
        .target(name: "ReportFormats", dependencies: [
            "LeakAnalysis", "AllocationLedger", "Reachability", "CZlib", .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        ]),
        // Suppressions in valgrind's .supp and LeakSanitizer's leak: syntax: parsing, matching a
        // report's groups, and writing valgrind entries for the leaks found.
        .target(name: "LeakSuppressions", dependencies: ["LeakAnalysis", "AllocationLedger", "Reachability"]),
        // The monitor's control socket: `leakvisor inspect` asks a running monitor questions.
        .target(name: "Control", dependencies: ["X86", "Introspection", "AllocationTracing", "LeakAnalysis"]),
        // The soak journal: every scan's report and per-site/per-process samples in SQLite (GRDB),
        // thinned to a bounded size; read back for reports, diffs and growth rates without a guest.
        .target(name: "LeakJournal", dependencies: [
            "AllocationLedger", "Reachability", "LeakAnalysis", .product(name: "GRDB", package: "GRDB.swift"),
        ]),
        // Live metrics of a tracking session in the Prometheus text format (through swift-prometheus),
        // and the small bounded HTTP server over POSIX sockets that serves them on GET /metrics.
        .target(name: "MetricsExport", dependencies: [
            "AllocationLedger", "AllocationTracing", "LeakAnalysis", "Reachability", .product(name: "Prometheus", package: "swift-prometheus"),
        ]),
        // The monitor assembled over any `InspectableGuest`: tracing wired to analysis, scan
        // scheduling, reports, detach, and the answers to `leakvisor inspect`.
        .target(name: "Monitor", dependencies: [
            "GuestInterface", "Introspection", "AllocationLedger", "AllocationTracing", "LeakAnalysis", "Reachability", "Control", "LeakJournal",
            "MetricsExport",
        ]),
        // The benchmarks (boot, tracking cost, scans) over our own `Machine`; `leakvisor bench` wraps them.
        .target(name: "Benchmarks", dependencies: [
            "VMM", "GuestImage", "GuestInterface", "Introspection", "AllocationLedger", "AllocationTracing", "LeakAnalysis",
            "Reachability", "Monitor", "SnapshotFile",
        ]),
        // Initramfs assembly: cpio writer, host files and their shared libraries.
        .target(name: "GuestImage"),
        // Thin unsafe layer over libvirt's C API (libvirt-dev): connections, domains, the QEMU monitor. No logic.
        .target(name: "CLibvirt", linkerSettings: [.linkedLibrary("virt"), .linkedLibrary("virt-qemu")]),
        // libvirt domains for `leakvisor attach --connect`: lookup, state, pause, the QEMU monitor, the QEMU process.
        .target(name: "Libvirt", dependencies: ["CLibvirt"]),
        // A client of the GDB remote protocol (QEMU's gdbstub): framing, stop replies, QEMU's x86-64 registers.
        .target(name: "GDBRemote", dependencies: ["X86"]),
        // A guest that a QEMU process runs, as an `InspectableGuest` and `TrapHandlerHost`: RAM through the
        // process's shared mapping, vCPUs and breakpoints through its gdbstub.
        .target(name: "QEMUBackend", dependencies: ["GDBRemote", "GuestInterface", "GuestMemory", "X86", "CUserfaultfd"]),
        // Thin unsafe layer over Linux's userfaultfd (a QEMU process's private RAM mirrored page by page). No logic.
        .target(name: "CUserfaultfd"),
        .executableTarget(
            name: "leakvisor",
            dependencies: [
                "VMM", "GuestImage", "X86", "Introspection", "DebugInfo", "Control", "GuestInterface", "AllocationLedger", "SnapshotFile",
                "AllocationTracing", "LeakAnalysis", "Reachability", "Monitor", "Benchmarks", "ReportFormats", "LeakSuppressions",
                "LeakJournal", "MetricsExport", "Libvirt", "QEMUBackend",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .testTarget(name: "UnitTests", dependencies: [
            "KVM", "GuestMemory", "X86", "BTF", "Boot", "Devices", "VMM", "GuestImage", "Introspection", "DebugInfo", "Control",
            "GuestInterface", "AllocationLedger", "AllocationTracing", "LeakAnalysis", "Reachability", "Monitor", "Benchmarks",
            "KVMState", "SnapshotFile", "BinaryCoding", "ReportFormats", "LeakSuppressions", "LeakJournal", "MetricsExport",
            "leakvisor", "GDBRemote", "QEMUBackend", "Libvirt",
            .product(name: "GRDB", package: "GRDB.swift"),
        ], exclude: ["Fixtures"]),
        .testTarget(name: "IntegrationTests", dependencies: ["GuestImage"]),
    ],
    swiftLanguageModes: [.v6]
)

// The modules on the monitor's hot paths (trap handling, page walks, scans) are optimized in debug
// builds too: unoptimized, a kernel scan pauses the guest for most of its interval.
// LEAKVISOR_UNOPTIMIZED_DEBUG=1 builds them with -Onone for a debugger.
let hotPathModules: Set<String> = [
    "GuestMemory", "X86", "KVM", "Devices", "VMM", "DebugInfo", "Introspection", "Reachability", "AllocationLedger",
    "AllocationTracing", "LeakAnalysis", "Monitor",
]
if Context.environment["LEAKVISOR_UNOPTIMIZED_DEBUG"] == nil {
    for target in package.targets where hotPathModules.contains(target.name) {
        target.swiftSettings = (target.swiftSettings ?? []) + [.unsafeFlags(["-O"], .when(configuration: .debug))]
    }
}
