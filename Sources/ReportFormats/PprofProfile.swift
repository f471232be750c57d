import Foundation
import LeakAnalysis
import SwiftProtobuf

/// A gzipped profile.proto heap profile (Protos/profile.proto): sample types inuse_objects,
/// inuse_space, alloc_objects, alloc_space; one sample per allocation group with its stack,
/// labelled with its leak class, allocator and process. The allocations a process made and
/// released are one more sample per process (alloc values only, inuse zero) under a
/// "(released allocations)" frame, since the ledger keeps no stack for them: a process's alloc
/// totals are then its whole allocation count and bytes.
enum PprofProfile {
    static func render(_ report: LeakReport) throws -> Data {
        var builder = Builder()
        var profile = Perftools_Profiles_Profile()
        profile.sampleType = [("inuse_objects", "count"), ("inuse_space", "bytes"),
                              ("alloc_objects", "count"), ("alloc_space", "bytes")].map { builder.valueType($0.0, $0.1) }
        profile.periodType = builder.valueType("space", "bytes")
        profile.period = 1
        profile.durationNanos = Self.int64(report.seconds * 1e9)
        profile.defaultSampleType = builder.string("inuse_space")
        profile.comment = [builder.string("LeakVisor heap profile: outstanding blocks per allocation stack")]
            + report.notes.map { builder.string($0) }

        for process in report.processes {
            let command = process.command ?? "unknown"
            var processLabels = [builder.label("process", command)]
            if let pid = process.pid { processLabels.append(builder.label("pid", number: Int64(pid))) }
            for group in process.groups {
                var sample = Perftools_Profiles_Sample()
                sample.locationID = group.frames.map { builder.location($0) }
                let objects = Int64(clamping: group.blocks), bytes = Int64(clamping: group.bytes)
                sample.value = [objects, bytes, objects, bytes]
                sample.label = processLabels + [builder.label("class", group.reachability?.rawValue ?? "not scanned"),
                                                builder.label("allocator", group.function.rawValue)]
                profile.sample.append(sample)
            }
            let releasedObjects = process.outstandingBlocks >= 0 && process.allocations >= process.outstandingBlocks
                ? Int64(process.allocations - process.outstandingBlocks) : 0
            let released = process.bytesAllocated.subtractingReportingOverflow(process.outstandingBytes)
            let releasedBytes = released.overflow ? 0 : Int64(clamping: released.partialValue)
            if releasedObjects > 0 || releasedBytes > 0 {
                var sample = Perftools_Profiles_Sample()
                sample.locationID = [builder.location(ReportFrame(pc: 0, function: "(released allocations)"))]
                sample.value = [0, 0, max(0, releasedObjects), max(0, releasedBytes)]
                sample.label = processLabels + [builder.label("class", "released")]
                profile.sample.append(sample)
            }
        }
        profile.location = builder.locations
        profile.function = builder.functions
        profile.stringTable = builder.strings
        return try Gzip.compress(try profile.serializedData())
    }

    /// Seconds as nanoseconds in an int64, clamped (NaN: 0).
    static func int64(_ value: Double) -> Int64 {
        guard value.isFinite else { return 0 }
        return Int64(min(max(value, 0), 9.2e18))
    }

    /// The profile's string, function and location tables, deduplicated.
    struct Builder {
        var strings: [String] = [""]
        var stringIndex: [String: Int64] = ["": 0]
        var functions: [Perftools_Profiles_Function] = []
        var functionIndex: [String: UInt64] = [:]
        var locations: [Perftools_Profiles_Location] = []
        var locationIndex: [String: UInt64] = [:]

        mutating func string(_ text: String) -> Int64 {
            if let index = stringIndex[text] { return index }
            let index = Int64(strings.count)
            strings.append(text)
            stringIndex[text] = index
            return index
        }

        mutating func valueType(_ type: String, _ unit: String) -> Perftools_Profiles_ValueType {
            var value = Perftools_Profiles_ValueType()
            value.type = string(type)
            value.unit = string(unit)
            return value
        }

        mutating func label(_ key: String, _ text: String) -> Perftools_Profiles_Label {
            var label = Perftools_Profiles_Label()
            label.key = string(key)
            label.str = string(text)
            return label
        }

        mutating func label(_ key: String, number: Int64) -> Perftools_Profiles_Label {
            var label = Perftools_Profiles_Label()
            label.key = string(key)
            label.num = number
            return label
        }

        /// One function per name and file (the module stands in for a missing file).
        mutating func function(_ frame: ReportFrame) -> UInt64 {
            let name = FrameNaming.name(frame)
            let file = frame.file ?? frame.module ?? ""
            let key = name + "\u{0}" + file
            if let id = functionIndex[key] { return id }
            var function = Perftools_Profiles_Function()
            function.id = UInt64(functions.count + 1)
            function.name = string(name)
            function.systemName = function.name
            function.filename = string(file)
            functions.append(function)
            functionIndex[key] = function.id
            return function.id
        }

        /// One location per address and symbolization (the same pc in two processes may be
        /// different code).
        mutating func location(_ frame: ReportFrame) -> UInt64 {
            let key = "\(frame.pc)\u{0}\(frame.module ?? "")\u{0}\(FrameNaming.name(frame))\u{0}\(frame.file ?? "")\u{0}\(frame.line ?? 0)"
            if let id = locationIndex[key] { return id }
            var location = Perftools_Profiles_Location()
            location.id = UInt64(locations.count + 1)
            location.address = frame.pc
            var line = Perftools_Profiles_Line()
            line.functionID = function(frame)
            line.line = Int64(frame.line ?? 0)
            location.line = [line]
            locations.append(location)
            locationIndex[key] = location.id
            return location.id
        }
    }
}
