import Foundation
import LeakAnalysis
@testable import ReportFormats
import Testing

/// The pprof form decoded back: gzip, profile.proto's tables, a sample per group with its stack
/// and class label, per-process released allocations in the alloc values.
@Suite struct PprofFormatTests {
    static func profile(_ report: LeakReport) throws -> Perftools_Profiles_Profile {
        let gzipped = try ReportRenderer.render(report, as: .pprof)
        #expect(gzipped.prefix(2) == Data([0x1f, 0x8b]), "not gzip")
        let unzipped = try ReportFixtures.run("/bin/gzip", ["-dc"], input: gzipped)
        #expect(unzipped.status == 0)
        return try Perftools_Profiles_Profile(serializedBytes: unzipped.output)
    }

    static func label(_ sample: Perftools_Profiles_Sample, _ key: String, _ p: Perftools_Profiles_Profile) -> String? {
        sample.label.first { p.stringTable[Int($0.key)] == key }.map { p.stringTable[Int($0.str)] }
    }

    @Test func aSamplePerGroupWithItsStackAndClass() throws {
        let report = try ReportFixtures.leakTree()
        let p = try Self.profile(report)
        #expect(p.stringTable.first == "")
        #expect(p.sampleType.map { p.stringTable[Int($0.type)] } == ["inuse_objects", "inuse_space", "alloc_objects", "alloc_space"])
        #expect(p.stringTable[Int(p.defaultSampleType)] == "inuse_space")
        let process = report.processes[0]
        let grouped = p.sample.filter { Self.label($0, "class", p) != "released" }
        #expect(grouped.count == process.groups.count)
        #expect(UInt64(grouped.map { $0.value[1] }.reduce(0, +)) == process.outstandingBytes)
        #expect(grouped.map { $0.value[0] }.reduce(0, +) == Int64(process.outstandingBlocks))
        // alloc totals: every allocation the process made.
        #expect(p.sample.map { $0.value[2] }.reduce(0, +) == Int64(process.allocations))
        #expect(UInt64(p.sample.map { $0.value[3] }.reduce(0, +)) == process.bytesAllocated)
        // The leaf is the allocator, then the program's functions, with lines.
        let direct = try #require(grouped.first { Self.label($0, "class", p) == "definitely lost" })
        let functions = direct.locationID.map { id -> String in
            let location = p.location[Int(id) - 1]
            return p.stringTable[Int(p.function[Int(location.line[0].functionID) - 1].name)]
        }
        #expect(functions.first == "malloc")
        #expect(functions.contains("main"))
        #expect(p.location.allSatisfy { $0.id > 0 && !$0.line.isEmpty })
        #expect(Self.label(direct, "process", p) == "lv-leak-tree")
    }

    @Test func edgeCasesEncode() throws {
        #expect(try Self.profile(try ReportFixtures.empty()).sample.isEmpty)
        let unsymbolized = try Self.profile(try ReportFixtures.unsymbolized())
        #expect(unsymbolized.function.allSatisfy { unsymbolized.stringTable[Int($0.name)].hasPrefix("0x")
            || unsymbolized.stringTable[Int($0.name)] == "(released allocations)" })
        let huge = try Self.profile(try ReportFixtures.huge())
        #expect(huge.sample.contains { $0.value[1] == Int64.max })
    }
}
