// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "LeakVisor",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "leakvisor", targets: ["leakvisor"]),
        // The parsers and walkers of guest data, for the libFuzzer targets in Fuzz/ (not used by the tool itself).
        .library(name: "LeakVisorGuestParsers", targets: [
            "GuestMemory", "DebugInfo", "Introspection", "Reachability", "Devices", "AllocationTracking", "Control",
        ]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // Thin unsafe layer: linux/kvm.h constants and non-variadic ioctl wrappers. No logic.
        .target(name: "CKVM"),
        // Owners of /dev/kvm, the VM and vCPU file descriptors; decoded exits; typed errors.
        .target(name: "KVM", dependencies: ["CKVM"]),
        // Guest-physical address types, mmap'd RAM regions, bounds-checked access.
        .target(name: "GuestMemory"),
        // Kernel loaders (ELF vmlinux, bzImage), boot_params, e820, command line, page tables.
        .target(name: "Boot", dependencies: ["GuestMemory"]),
        // Emulated devices on port and MMIO buses: 16550 UART, CMOS/RTC, i8042, debug exit port.
        .target(name: "Devices"),
        // Thin unsafe layer over elfutils (libelf, libdw, libdwfl). No logic.
        .target(name: "CElfDW", linkerSettings: [.linkedLibrary("elf"), .linkedLibrary("dw")]),
        // ELF symbol tables, DWARF lines and CFI unwinding through libdw, fed by any memory reader.
        .target(name: "DebugInfo", dependencies: ["CElfDW"]),
        // Reading the guest the way it sees itself: page tables, kernel symbols, BTF, tasks, VMAs.
        .target(name: "Introspection", dependencies: ["GuestMemory", "DebugInfo"]),
        // Conservative reachability: roots of a guest process, marking and leak classes, page cache.
        .target(name: "Reachability", dependencies: ["GuestMemory", "Introspection", "DebugInfo"]),
        // Guest allocator breakpoints, the allocation ledger outside the guest, and leak reports.
        .target(name: "AllocationTracking", dependencies: ["GuestMemory", "Introspection", "DebugInfo", "Reachability"]),
        // The monitor's control socket: `leakvisor inspect` asks a running monitor questions.
        .target(name: "Control", dependencies: ["Introspection", "AllocationTracking"]),
        // The machine: builder, vCPU loop, host policy (PVM vs VMX/SVM), emulation fix-ups.
        .target(name: "VMM", dependencies: ["KVM", "GuestMemory", "Boot", "Devices", "Introspection"]),
        // Arms the allocator breakpoints in a running guest and feeds the ledger from its traps.
        .target(name: "AllocationMonitor", dependencies: ["VMM", "AllocationTracking", "Introspection", "DebugInfo", "GuestMemory", "Reachability"]),
        // Initramfs assembly: cpio writer, host files and their shared libraries.
        .target(name: "GuestImage"),
        .executableTarget(
            name: "leakvisor",
            dependencies: [
                "VMM", "GuestImage", "Introspection", "DebugInfo", "Control", "AllocationTracking", "AllocationMonitor",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .testTarget(name: "UnitTests", dependencies: [
            "KVM", "GuestMemory", "Boot", "Devices", "VMM", "GuestImage", "Introspection", "DebugInfo", "Control",
            "AllocationTracking", "AllocationMonitor", "Reachability",
        ], exclude: ["Fixtures"]),
        .testTarget(name: "IntegrationTests", dependencies: ["GuestImage"]),
    ],
    swiftLanguageModes: [.v6]
)
