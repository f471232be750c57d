import GuestMemory

/// The BIOS-style physical memory map handed to the kernel in boot_params.
public struct E820Map: Sendable, Equatable {
    public enum Kind: UInt32, Sendable { case ram = 1, reserved = 2 }
    public struct Entry: Sendable, Equatable {
        public let start: UInt64
        public let size: UInt64
        public let kind: Kind
    }
    public private(set) var entries: [Entry] = []

    /// RAM below the EBDA, the legacy hole reserved, then every RAM region above 1 MiB.
    public init(memory: GuestMemory) {
        entries.append(Entry(start: 0, size: BootLayout.ebdaStart, kind: .ram))
        entries.append(Entry(start: BootLayout.ebdaStart, size: BootLayout.highMemory - BootLayout.ebdaStart, kind: .reserved))
        for region in memory.regions {
            let start = max(region.start.rawValue, BootLayout.highMemory)
            let end = region.end.rawValue
            if end > start { entries.append(Entry(start: start, size: end - start, kind: .ram)) }
        }
    }
}
