import GuestMemory

/// Where a QEMU x86 machine puts its RAM in guest-physical space and in its one RAM block:
/// below 4 GiB up to the machine's low-memory limit, the rest from 4 GiB, one after the other in
/// the block (QEMU's `pc` and `q35` rules). Pure.
public enum QEMURAMLayout {
    /// The extents of `size` bytes of RAM on machine type `machine` (`pc-i440fx-…`, `pc`, `q35`, `pc-q35-…`).
    public static func extents(ramBytes size: UInt64, machine: String) -> [GuestRAMExtent] {
        let low: UInt64
        if machine.contains("q35") {
            low = size >= 0xB000_0000 ? 0x8000_0000 : size
        } else {
            low = size >= 0xE000_0000 ? 0xC000_0000 : size
        }
        var extents = [GuestRAMExtent(start: 0, size: low)]
        if size > low { extents.append(GuestRAMExtent(start: 1 << 32, size: size - low)) }
        return extents
    }

    /// The start of the one private anonymous mapping of exactly `size` bytes in a `/proc/PID/maps`
    /// listing (QEMU's default RAM block), or nil when there is none or more than one.
    public static func privateRAMStart(in maps: String, bytes size: UInt64) -> UInt64? {
        var found: [UInt64] = []
        for line in maps.split(whereSeparator: \.isNewline) {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count == 5, fields[1] == "rw-p", fields[4] == "0" else { continue }
            let bounds = fields[0].split(separator: "-")
            guard bounds.count == 2, let start = UInt64(bounds[0], radix: 16), let end = UInt64(bounds[1], radix: 16),
                  end > start, end - start == size else { continue }
            found.append(start)
        }
        return found.count == 1 ? found[0] : nil
    }

    /// The shared mapping of `size` bytes in a `/proc/PID/maps` listing: its `start-end` range
    /// (the name of its `/proc/PID/map_files` entry), or nil. Only shared writable mappings of
    /// exactly the RAM's size qualify (QEMU's memfd or file-backed RAM block).
    public static func sharedRAMRange(in maps: String, bytes size: UInt64) -> String? {
        for line in maps.split(whereSeparator: \.isNewline) {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 5, fields[1] == "rw-s" else { continue }
            let bounds = fields[0].split(separator: "-")
            guard bounds.count == 2, let start = UInt64(bounds[0], radix: 16), let end = UInt64(bounds[1], radix: 16),
                  end > start, end - start == size, fields[2].allSatisfy({ $0 == "0" }) else { continue }
            return String(fields[0])
        }
        return nil
    }
}
