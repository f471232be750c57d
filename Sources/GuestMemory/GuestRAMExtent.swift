/// Where one RAM region sits in the guest-physical space: what a file of guest RAM must be
/// mapped back as.
public struct GuestRAMExtent: Sendable, Equatable, Codable {
    public let start: UInt64
    public let size: UInt64

    public init(start: UInt64, size: UInt64) {
        self.start = start
        self.size = size
    }

    static let pageSize: UInt64 = 4096
    /// More regions than any layout of ours has (two: below the 3 GiB hole and from 4 GiB).
    public static let maxRegions = 16

    /// Checks a layout read from an untrusted file: 1...`maxRegions` page-aligned, non-empty regions,
    /// ascending and non-overlapping, none past 2^64. Returns the total size.
    public static func validate(_ layout: [GuestRAMExtent]) throws(GuestMemoryFileError) -> UInt64 {
        guard !layout.isEmpty, layout.count <= maxRegions else {
            throw .invalidLayout("\(layout.count) regions (1...\(maxRegions) accepted)")
        }
        var total: UInt64 = 0
        var previousEnd: UInt64 = 0
        for (i, e) in layout.enumerated() {
            guard e.size > 0, e.size % pageSize == 0, e.start % pageSize == 0 else {
                throw .invalidLayout("region \(i) at 0x\(String(e.start, radix: 16)) of \(e.size) bytes is empty or not page-aligned")
            }
            let (end, overflow) = e.start.addingReportingOverflow(e.size)
            guard !overflow else { throw .invalidLayout("region \(i) ends past 2^64") }
            guard i == 0 || e.start >= previousEnd else { throw .invalidLayout("region \(i) overlaps or precedes region \(i - 1)") }
            previousEnd = end
            let (sum, sumOverflow) = total.addingReportingOverflow(e.size)
            guard !sumOverflow else { throw .invalidLayout("total size overflows") }
            total = sum
        }
        return total
    }
}
