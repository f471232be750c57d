import Foundation
import LeakAnalysis

/// The suppressions of one or more files, in order (the first that matches a group takes it).
public struct SuppressionList: Sendable, Equatable {
    public var suppressions: [Suppression]

    public init(_ suppressions: [Suppression] = []) {
        self.suppressions = suppressions
    }

    /// Reads each file, valgrind's syntax if its first line that is not a comment is `{`, else
    /// LeakSanitizer's.
    public static func load(_ paths: [String]) throws -> SuppressionList {
        var all: [Suppression] = []
        for path in paths {
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            guard let text = String(data: data, encoding: .utf8) else {
                throw SuppressionError(file: path, line: 1, reason: "not UTF-8 text")
            }
            all += try parse(text, file: path)
        }
        return SuppressionList(all)
    }

    public static func parse(_ text: String, file: String) throws -> [Suppression] {
        let first = text.split(separator: "\n").map(\.trimmingWhitespace).first { !$0.isEmpty && !$0.hasPrefix("#") }
        return first == "{" ? try ValgrindSuppressionParser.parse(text, file: file)
                            : try LeakSanitizerSuppressionParser.parse(text, file: file)
    }

    /// The report without the groups a suppression matches: their blocks and bytes leave the
    /// class totals (scans' and the summary's) and the site count, and are counted per
    /// suppression in `report.suppressed` (every suppression listed, also those that matched
    /// nothing). Outstanding totals stay: the blocks are still in use, as valgrind's heap summary
    /// still counts suppressed blocks. Findings and growing sites are kept.
    public func apply(to report: LeakReport) -> LeakReport {
        var report = report
        var counts = suppressions.map { SuppressedCount(name: $0.name, file: $0.file) }
        for p in report.processes.indices {
            var kept: [AllocationGroup] = []
            for group in report.processes[p].groups {
                guard let index = suppressions.firstIndex(where: { $0.matches(group.frames, reachability: group.reachability) }) else {
                    kept.append(group)
                    continue
                }
                counts[index].groups &+= 1
                counts[index].blocks &+= group.blocks
                counts[index].bytes = counts[index].bytes.addingSaturated(group.bytes)
                let removed = BlockTotal(blocks: group.blocks, bytes: group.bytes)
                if var scan = report.processes[p].scan {
                    scan.classes[group.reachability] = scan.classes[group.reachability].minus(removed)
                    report.processes[p].scan = scan
                }
                report.summary.classes[group.reachability] = report.summary.classes[group.reachability].minus(removed)
                report.summary.allocationSites = max(0, report.summary.allocationSites &- 1)
            }
            report.processes[p].groups = kept
        }
        report.suppressed = (report.suppressed ?? []) + counts
        return report
    }
}

extension BlockTotal {
    /// This total less `other`, never below zero (a saturated byte total stays saturated); counts
    /// from a report file may be anything, so the subtraction is checked.
    func minus(_ other: BlockTotal) -> BlockTotal {
        let difference = blocks.subtractingReportingOverflow(other.blocks)
        return BlockTotal(blocks: difference.overflow ? 0 : max(0, difference.partialValue),
                          bytes: bytes == .max ? .max : (bytes >= other.bytes ? bytes - other.bytes : 0))
    }
}
