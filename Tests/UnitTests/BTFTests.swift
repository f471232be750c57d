import AllocationLedger
import AllocationTracing
import BTF
import DebugInfo
import Foundation
import GuestInterface
import Introspection
import LeakAnalysis
import Testing

// MARK: - Crafted BTF

/// Assembles a little-endian BTF blob: header, type records, strings. Type ids are returned as added.
private struct BTFBuilder {
    var types: [UInt8] = []
    var strings: [UInt8] = [0]
    private(set) var count = 0

    /// Adds `text` to the string section; "" is offset 0.
    mutating func string(_ text: String) -> UInt32 {
        if text.isEmpty { return 0 }
        let offset = UInt32(strings.count)
        strings += Array(text.utf8) + [0]
        return offset
    }

    /// Appends a raw record: `btf_type` words then kind-specific words.
    @discardableResult
    mutating func record(name: UInt32, kind: UInt32, vlen: Int = 0, kindFlag: Bool = false,
                         sizeOrType: UInt32, data: [UInt32] = []) -> BTFTypeID {
        let info = UInt32(vlen) | kind << 24 | (kindFlag ? 1 << 31 : 0)
        for word in [name, info, sizeOrType] + data { types += le(word) }
        count += 1
        return BTFTypeID(UInt32(count))
    }

    @discardableResult
    mutating func record(_ name: String, kind: UInt32, vlen: Int = 0, kindFlag: Bool = false,
                         sizeOrType: UInt32, data: [UInt32] = []) -> BTFTypeID {
        record(name: string(name), kind: kind, vlen: vlen, kindFlag: kindFlag, sizeOrType: sizeOrType, data: data)
    }

    mutating func int(_ name: String, size: UInt32, signed: Bool = false, bits: UInt32? = nil, offset: UInt32 = 0) -> BTFTypeID {
        record(name, kind: 1, sizeOrType: size, data: [(signed ? 1 << 24 : 0) | offset << 16 | (bits ?? size * 8)])
    }

    mutating func pointer(to type: BTFTypeID) -> BTFTypeID { record("", kind: 2, sizeOrType: type.rawValue) }

    mutating func array(of element: BTFTypeID, index: BTFTypeID, count: UInt32) -> BTFTypeID {
        record("", kind: 3, sizeOrType: 0, data: [element.rawValue, index.rawValue, count])
    }

    /// A struct (or union); members are (name, type, bit offset, bitfield size); any bitfield sets kind_flag.
    mutating func composite(_ name: String, size: UInt32, union: Bool = false,
                            _ members: [(String, BTFTypeID, UInt32, UInt32)]) -> BTFTypeID {
        let kindFlag = members.contains { $0.3 != 0 }
        var data: [UInt32] = []
        for (memberName, type, bitOffset, bitSize) in members {
            data += [string(memberName), type.rawValue, kindFlag ? bitSize << 24 | bitOffset : bitOffset]
        }
        return record(name, kind: union ? 5 : 4, vlen: members.count, kindFlag: kindFlag, sizeOrType: size, data: data)
    }

    mutating func enumeration(_ name: String, signed: Bool = false, _ values: [(String, Int32)]) -> BTFTypeID {
        var data: [UInt32] = []
        for (valueName, value) in values { data += [string(valueName), UInt32(bitPattern: value)] }
        return record(name, kind: 6, vlen: values.count, kindFlag: signed, sizeOrType: 4, data: data)
    }

    mutating func typedef(_ name: String, to type: BTFTypeID) -> BTFTypeID { record(name, kind: 8, sizeOrType: type.rawValue) }

    /// The blob; the overrides replace header fields to craft broken headers.
    func blob(magic: UInt16 = 0xEB9F, version: UInt8 = 1, typeLength: UInt32? = nil,
              stringOffset: UInt32? = nil, stringLength: UInt32? = nil) -> [UInt8] {
        var out = [UInt8(magic & 0xFF), UInt8(magic >> 8), version, 0]
        let words: [UInt32] = [24, 0, typeLength ?? UInt32(types.count),
                               stringOffset ?? UInt32(types.count), stringLength ?? UInt32(strings.count)]
        for word in words { out += le(word) }
        return out + types + strings
    }

    private func le(_ word: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: word >> (8 * $0)) } }
}

/// One type of every kind (ids 1...19 in kind order, FUNC_PROTO before FUNC), then struct `after` (20).
private func allKindsBlob() -> [UInt8] {
    var b = BTFBuilder()
    let int = b.int("int", size: 4)                                                  // 1 INT
    let ptr = b.pointer(to: int)                                                     // 2 PTR
    let arr = b.array(of: int, index: int, count: 3)                                 // 3 ARRAY
    _ = b.composite("st", size: 4, [("m", int, 0, 0)])                               // 4 STRUCT
    _ = b.composite("un", size: 4, union: true, [("m", int, 0, 0)])                  // 5 UNION
    _ = b.enumeration("en", [("E0", 0), ("E1", 1)])                                  // 6 ENUM
    b.record("fw", kind: 7, kindFlag: true, sizeOrType: 0)                           // 7 FWD
    let td = b.typedef("td", to: int)                                                // 8 TYPEDEF
    let vol = b.record("", kind: 9, sizeOrType: td.rawValue)                         // 9 VOLATILE
    let con = b.record("", kind: 10, sizeOrType: vol.rawValue)                       // 10 CONST
    let res = b.record("", kind: 11, sizeOrType: ptr.rawValue)                       // 11 RESTRICT
    let (x, y, big, neg) = (b.string("x"), b.string("y"), b.string("BIG"), b.string("NEG"))
    let proto = b.record("", kind: 13, vlen: 2, sizeOrType: int.rawValue,            // 12 FUNC_PROTO
                         data: [x, int.rawValue, y, ptr.rawValue])
    b.record("fn", kind: 12, vlen: 1, sizeOrType: proto.rawValue)                    // 13 FUNC
    let v = b.record("var", kind: 14, sizeOrType: int.rawValue, data: [1])           // 14 VAR
    b.record(".data", kind: 15, vlen: 1, sizeOrType: 4, data: [v.rawValue, 0, 4])    // 15 DATASEC
    let fl = b.record("double", kind: 16, sizeOrType: 8)                             // 16 FLOAT
    b.record("tag", kind: 17, sizeOrType: int.rawValue, data: [0xFFFF_FFFF])         // 17 DECL_TAG
    let tt = b.record("user", kind: 18, sizeOrType: con.rawValue)                    // 18 TYPE_TAG
    let e64 = b.record("e64", kind: 19, vlen: 2, kindFlag: true, sizeOrType: 8,      // 19 ENUM64
                       data: [big, 0, 1, neg, 0xFFFF_FFFF, 0xFFFF_FFFF])
    _ = b.composite("after", size: 48, [                                             // 20
        ("t", tt, 0, 0), ("r", res, 64, 0), ("a", arr, 128, 0), ("f", fl, 256, 0), ("e", e64, 320, 0)])
    return b.blob()
}

private func parseError(_ data: [UInt8]) -> BTFError? {
    do { _ = try BTF(data: data); return nil } catch { return error }
}

@Suite struct BTFCraftedTests {
    @Test func rejectsTruncatedHeader() {
        #expect(parseError([]) == .truncatedHeader(size: 0))
        #expect(parseError(Array(BTFBuilder().blob().prefix(23))) == .truncatedHeader(size: 23))
    }

    @Test func rejectsBadMagicBigEndianAndVersion() {
        #expect(parseError(BTFBuilder().blob(magic: 0x1234)) == .badMagic(0x1234))
        #expect(parseError(BTFBuilder().blob(magic: 0x9FEB)) == .bigEndian)
        #expect(parseError(BTFBuilder().blob(version: 2)) == .unsupportedVersion(2))
    }

    @Test func rejectsHeaderLengthBeyondData() {
        var blob = BTFBuilder().blob()
        blob[4] = 0xFF
        #expect(parseError(blob) == .badHeaderLength(0xFF, size: blob.count))
    }

    @Test func rejectsSectionsOutOfBounds() {
        var b = BTFBuilder()
        _ = b.int("int", size: 4)
        let available = b.types.count + b.strings.count
        #expect(parseError(b.blob(typeLength: 1000))
            == .sectionOutOfBounds(.types, offset: 0, length: 1000, available: available))
        #expect(parseError(b.blob(stringOffset: 0xFFFF_FFFF))
            == .sectionOutOfBounds(.strings, offset: 0xFFFF_FFFF, length: UInt32(b.strings.count), available: available))
    }

    @Test func rejectsMalformedStringSection() {
        var b = BTFBuilder()
        b.strings = [0, 0x41]
        #expect(parseError(b.blob()) == .unterminatedStringSection)
        b.strings = [0x41, 0]
        #expect(parseError(b.blob()) == .missingEmptyString)
    }

    @Test func rejectsStringOffsetsOutOfBounds() {
        var b = BTFBuilder()
        b.record(name: 1000, kind: 1, sizeOrType: 4, data: [32])
        #expect(parseError(b.blob()) == .stringOffsetOutOfBounds(1000, type: BTFTypeID(1)))

        var m = BTFBuilder()
        let int = m.int("int", size: 4)
        m.record("s", kind: 4, vlen: 1, sizeOrType: 4, data: [77, int.rawValue, 0])
        #expect(parseError(m.blob()) == .stringOffsetOutOfBounds(77, type: BTFTypeID(2)))
    }

    @Test func rejectsTruncatedRecordsAndUnknownKinds() {
        var b = BTFBuilder()
        let int = b.int("int", size: 4)
        // vlen says 3 members, but only one follows.
        b.record("s", kind: 4, vlen: 3, sizeOrType: 12, data: [0, int.rawValue, 0])
        #expect(parseError(b.blob()) == .truncatedType(BTFTypeID(2), offset: 16))

        var partial = BTFBuilder()
        partial.types = [0, 0, 0, 0, 0, 0]
        #expect(parseError(partial.blob()) == .truncatedType(BTFTypeID(1), offset: 0))

        for kind: UInt32 in [0, 20, 31] {
            var u = BTFBuilder()
            _ = u.int("int", size: 4)
            u.record("odd", kind: kind, sizeOrType: 0)
            #expect(parseError(u.blob()) == .unknownKind(BTFTypeID(2), kind: UInt8(kind)))
        }
    }

    @Test func rejectsMemberTypeIDOutOfRange() throws {
        var b = BTFBuilder()
        let int = b.int("int", size: 4)
        _ = b.composite("s", size: 8, [("ok", int, 0, 0), ("bad", BTFTypeID(99), 32, 0)])
        let btf = try BTF(data: b.blob())
        #expect(try btf.member("s", path: "ok").offset == 0)
        #expect(throws: BTFError.typeIDOutOfRange(BTFTypeID(99), typeCount: 2)) { try btf.member("s", path: "bad") }
        #expect(throws: BTFError.typeIDOutOfRange(BTFTypeID(3), typeCount: 2)) { try btf.type(BTFTypeID(3)) }
    }

    @Test func typedefCycleIsAnErrorNotAHang() throws {
        var b = BTFBuilder()
        // A (id 1) -> B (id 2) -> A.
        let a = b.typedef("A", to: BTFTypeID(2))
        _ = b.typedef("B", to: a)
        _ = b.composite("s", size: 4, [("x", a, 0, 0)])
        // An array of itself, and an anonymous struct containing itself.
        let selfArray = b.array(of: BTFTypeID(4), index: BTFTypeID(0), count: 2)
        _ = b.composite("", size: 4, [("", BTFTypeID(5), 0, 0)])
        let btf = try BTF(data: b.blob())
        #expect(throws: BTFError.resolveDepthExceeded(a)) { try btf.resolvedID(a) }
        #expect(throws: BTFError.resolveDepthExceeded(a)) { try btf.member("s", path: "x") }
        #expect(throws: BTFError.resolveDepthExceeded(selfArray)) { try btf.size(of: selfArray) }
        #expect(throws: BTFError.noSuchMember("y", in: "#5")) { try btf.member(in: BTFTypeID(5), path: "y") }
    }

    @Test func deepAnonymousNestingIsAnError() throws {
        var b = BTFBuilder()
        let int = b.int("int", size: 4)
        var inner = b.composite("", size: 4, [("deep", int, 0, 0)])
        for _ in 0..<40 { inner = b.composite("", size: 4, [("", inner, 0, 0)]) }
        _ = b.composite("top", size: 4, [("", inner, 0, 0)])
        let btf = try BTF(data: b.blob())
        let error = #expect(throws: BTFError.self) { try btf.member("top", path: "deep") }
        guard case .nestingTooDeep = error else { Issue.record("expected nestingTooDeep, got \(String(describing: error))"); return }
    }

    @Test func bitfieldsWithKindFlag() throws {
        var b = BTFBuilder()
        let uint = b.int("unsigned int", size: 4)
        _ = b.composite("flags", size: 8, [("a", uint, 0, 3), ("b", uint, 3, 5), ("c", uint, 33, 1), ("d", uint, 40, 0)])
        let btf = try BTF(data: b.blob())
        let a = try btf.member("flags", path: "a"), bb = try btf.member("flags", path: "b")
        let c = try btf.member("flags", path: "c"), d = try btf.member("flags", path: "d")
        #expect(a.bitOffset == 0 && a.bitfieldSize == 3 && a.offset == 0 && a.size == 4)
        #expect(bb.bitOffset == 3 && bb.bitfieldSize == 5)
        #expect(c.bitOffset == 33 && c.bitfieldSize == 1 && c.offset == 4)
        #expect(d.bitOffset == 40 && d.bitfieldSize == nil && d.offset == 5)
        let fields = try btf.members(of: btf.structure(named: "flags").id)
        #expect(fields.map(\.name) == ["a", "b", "c", "d"] && fields[1].bitfieldSize == 5)
    }

    @Test func legacyBitfieldsInTheIntEncoding() throws {
        var b = BTFBuilder()
        let three = b.int("", size: 4, bits: 3, offset: 2)
        _ = b.composite("old", size: 4, [("x", three, 8, 0)])
        let x = try BTF(data: b.blob()).member("old", path: "x")
        #expect(x.bitOffset == 10 && x.bitfieldSize == 3 && x.offset == 1)
    }

    @Test func anonymousMembersAreSearchedAndOffsetsSummed() throws {
        var b = BTFBuilder()
        let int = b.int("int", size: 4, signed: true)
        let long = b.int("long", size: 8, signed: true)
        let pair = b.composite("", size: 8, [("a", int, 0, 0), ("b", int, 32, 0)])
        let either = b.composite("", size: 8, union: true, [("", pair, 0, 0), ("c", long, 0, 0)])
        let inner = b.composite("inner", size: 16, [("y", long, 64, 0)])
        let pointer = b.pointer(to: inner)
        _ = b.composite("outer", size: 40, [("x", int, 0, 0), ("", either, 64, 0), ("in", inner, 128, 0), ("p", pointer, 256, 0)])
        let btf = try BTF(data: b.blob())
        let member = try btf.member("outer", path: "b")
        #expect(member.offset == 12 && member.size == 4)
        #expect(member.type == .integer(BTFInteger(size: 4, isSigned: true, isChar: false, isBool: false, bitOffset: 0, bits: 32)))
        #expect(try btf.member("outer", path: "c").offset == 8)
        #expect(try btf.member("outer", path: "in.y").offset == 24)
        #expect(try btf.member("outer", path: "in").type == .structure(inner))
        #expect(try btf.member("outer", path: "p").pointee == inner)
        #expect(try btf.size(ofStructure: "outer") == 40)
        #expect(throws: BTFError.noSuchMember("z", in: "outer.in")) { try btf.member("outer", path: "in.z") }
        #expect(throws: BTFError.notComposite("outer.p", .pointer)) { try btf.member("outer", path: "p.y") }
        #expect(throws: BTFError.invalidPath("in..y")) { try btf.member("outer", path: "in..y") }
        #expect(throws: BTFError.invalidPath("")) { try btf.member("outer", path: "") }
        #expect(throws: BTFError.noSuchType("nope")) { try btf.structure(named: "nope") }
    }

    @Test func everyKindIsSkippedCorrectly() throws {
        let btf = try BTF(data: allKindsBlob())
        let (int, arr, fw, fn, v, e64) = (BTFTypeID(1), BTFTypeID(3), BTFTypeID(7), BTFTypeID(13), BTFTypeID(14), BTFTypeID(19))

        #expect(btf.typeCount == 20)
        let kinds = try (1...20).map { try btf.type(BTFTypeID(UInt32($0))).kind }
        #expect(kinds == [.integer, .pointer, .array, .structure, .union, .enumeration, .forward, .typedef,
                          .volatile, .const, .restrict, .functionPrototype, .function, .variable, .dataSection,
                          .float, .declarationTag, .typeTag, .enumeration64, .structure])
        #expect(try btf.type(BTFTypeID(20)).name == "after")
        #expect(try btf.member("after", path: "t").resolvedTypeID == int)
        #expect(try btf.member("after", path: "r").pointee == int)
        #expect(try btf.resolve(arr) == .array(element: int, count: 3))
        let array = try btf.member("after", path: "a")
        #expect(array.arrayCount == 3 && array.size == 12 && array.offset == 16)
        #expect(try btf.member("after", path: "f").type == .float(size: 8))
        #expect(try btf.member("after", path: "e").type == .enumeration(e64))
        #expect(try btf.enumValue("e64", "BIG") == 1 << 32)
        #expect(try btf.enumValue("e64", "NEG") == -1)
        #expect(try btf.enumValue("en", "E1") == 1)
        #expect(try btf.resolve(fw) == .forward(isUnion: true))
        #expect(try btf.resolve(fn) == .function(fn))
        #expect(throws: BTFError.notADataType(v, .variable)) { try btf.resolve(v) }
        #expect(throws: BTFError.unsizedType(fw)) { try btf.size(of: fw) }
        #expect(throws: BTFError.unsizedType(.void)) { try btf.size(of: .void) }
    }

    /// Every byte of a valid blob overwritten with a few values: parsing and lookups throw or succeed,
    /// never trap or hang.
    @Test func corruptedBytesNeverTrap() {
        let blob = allKindsBlob()
        var parsed = 0
        for index in blob.indices {
            for value: UInt8 in [0x00, 0x13, 0xFF] where blob[index] != value {
                var corrupted = blob
                corrupted[index] = value
                guard let btf = try? BTF(data: corrupted) else { continue }
                parsed += 1
                exercise(btf)
            }
        }
        #expect(parsed > blob.count)
    }

    private func exercise(_ btf: BTF) {
        for raw in 0...UInt32(btf.typeCount + 1) {
            let id = BTFTypeID(raw)
            _ = try? btf.type(id)
            _ = try? btf.resolve(id)
            _ = try? btf.size(of: id)
            _ = try? btf.members(of: id)
            _ = try? btf.enumerators(of: id)
            for path in ["t", "a", "m", "x.y"] { _ = try? btf.member(in: id, path: path) }
        }
        for name in ["after", "st", "un", "td"] {
            for path in ["t", "r", "a", "f", "e", "m"] { _ = try? btf.member(name, path: path) }
        }
        _ = try? btf.enumValue("e64", "BIG")
        _ = try? btf.enumerator(named: "E1")
    }

    @Test func typedefsOfStructuresAreFoundByName() throws {
        var b = BTFBuilder()
        let int = b.int("int", size: 4, signed: true)
        let anonymous = b.composite("", size: 4, [("counter", int, 0, 0)])
        let atomic = b.typedef("atomic_t", to: anonymous)
        let named = b.composite("point", size: 8, [("x", int, 0, 0), ("y", int, 32, 0)])
        _ = b.typedef("point_t", to: named)
        _ = b.typedef("int_t", to: int)
        let btf = try BTF(data: b.blob())
        let found = try btf.structure(named: "atomic_t")
        #expect(found.id == anonymous && found.name == "atomic_t" && found.size == 4 && !found.isUnion)
        #expect(try btf.member("atomic_t", path: "counter").size == 4)
        #expect(try btf.member(in: atomic, path: "counter").offset == 0)
        #expect(try btf.structure(named: "point_t").name == "point")
        #expect(try btf.member("point_t", path: "y").offset == 4)
        #expect(throws: BTFError.noSuchType("int_t")) { try btf.structure(named: "int_t") }
        #expect(btf.typeIDs(named: "point") == [named])
    }

    @Test func duplicateStructureNamesAreAmbiguous() throws {
        var b = BTFBuilder()
        let int = b.int("int", size: 4)
        let first = b.composite("dup", size: 4, [("a", int, 0, 0)])
        _ = b.record("dup", kind: 7, sizeOrType: 0)   // a forward declaration does not count
        let second = b.composite("dup", size: 8, union: true, [("b", int, 0, 0)])
        let btf = try BTF(data: b.blob())
        #expect(throws: BTFError.ambiguousType("dup", [first, second])) { try btf.structure(named: "dup") }
        #expect(try btf.structures(named: "dup").map(\.size) == [4, 8])
        #expect(try btf.member(in: second, path: "b").offset == 0)
    }

    @Test func enumLookups() throws {
        var b = BTFBuilder()
        _ = b.enumeration("colour", [("RED", 0), ("GREEN", 1), ("BIG", -2)])
        _ = b.enumeration("", signed: true, [("ANON_A", 7), ("ANON_NEG", -3)])
        _ = b.enumeration("", [("DUP", 1)])
        _ = b.enumeration("", [("DUP", 2), ("SAME", 5)])
        _ = b.enumeration("", [("SAME", 5)])
        let btf = try BTF(data: b.blob())
        #expect(try btf.enumValue("colour", "GREEN") == 1)
        #expect(try btf.enumValue("colour", "BIG") == 0xFFFF_FFFE)   // kind_flag clear: unsigned
        #expect(try btf.enumerator(named: "ANON_NEG") == -3)
        #expect(try btf.enumerator(named: "SAME") == 5)
        #expect(try btf.enumerator(named: "RED") == 0)
        #expect(throws: BTFError.ambiguousEnumerator("DUP", values: [1, 2])) { try btf.enumerator(named: "DUP") }
        #expect(throws: BTFError.noSuchEnumerator("BLUE", in: "colour")) { try btf.enumValue("colour", "BLUE") }
        #expect(throws: BTFError.noSuchEnumerator("BLUE", in: nil)) { try btf.enumerator(named: "BLUE") }
        #expect(throws: BTFError.noSuchType("shape")) { try btf.enumValue("shape", "RED") }
    }

    @Test func errorsDescribeThemselves() {
        #expect(BTFError.badMagic(0x1234).description.contains("0x1234"))
        #expect(BTFError.noSuchMember("sp", in: "task_struct.thread").description == "task_struct.thread has no member sp")
    }
}

// MARK: - The guest kernel's BTF

/// The `.BTF` section of the guest kernel (`TestKernelImage.path`), read through libelf as the
/// monitor reads it.
private func loadKernelBTF() throws -> BTF {
    guard FileManager.default.fileExists(atPath: TestKernelImage.path) else { throw TestKernelImage.Missing(path: TestKernelImage.path) }
    DebugInfo.ensureLibraryInitialised()
    let section = try #require(try ELFFile(path: TestKernelImage.path).section(named: ".BTF"))
    return try BTF(data: section.bytes)
}

private let kernelBTF = Result { try loadKernelBTF() }

@Suite struct BTFKernelTests {
    let btf: BTF

    init() throws { btf = try kernelBTF.get() }

    private func offset(_ structure: String, _ path: String) throws -> Int {
        try btf.member(structure, path: path).offset
    }

    /// Every struct and union in the kernel: each member's bytes lie inside it.
    @Test func everyMemberFitsInItsStructure() throws {
        var composites = 0, misfits: [String] = []
        for raw in 1...UInt32(btf.typeCount) {
            let type = try btf.type(BTFTypeID(raw))
            guard type.kind == .structure || type.kind == .union else { continue }
            composites += 1
            for field in try btf.members(of: type.id) {
                let bits = try field.bitfieldSize ?? 8 * btf.size(of: field.type)
                if field.bitOffset + bits > 8 * Int(type.sizeOrType) { misfits.append("\(type.name).\(field.name)") }
            }
        }
        #expect(composites > 5000)
        #expect(misfits.isEmpty, "\(misfits.prefix(10))")
    }

    @Test func listHeadAndPtRegs() throws {
        #expect(try btf.size(ofStructure: "list_head") == 16)
        #expect(try offset("list_head", "next") == 0)
        #expect(try offset("list_head", "prev") == 8)
        let next = try btf.member("list_head", path: "next")
        #expect(try next.size == 8 && next.pointee == btf.structure(named: "list_head").id)

        #expect(try btf.size(ofStructure: "pt_regs") == 168)
        #expect(try offset("pt_regs", "r15") == 0)
        #expect(try offset("pt_regs", "bp") == 32)
        #expect(try offset("pt_regs", "ip") == 128)
        #expect(try offset("pt_regs", "sp") == 152)
    }

    @Test func taskStruct() throws {
        let comm = try btf.member("task_struct", path: "comm")
        #expect(comm.arrayCount == 16 && comm.size == 16)
        if case .array(let element, _) = comm.type, case .integer(let char) = try btf.resolve(element) {
            // pahole encodes `char` as a signed 1-byte INT without the CHAR flag.
            #expect(try char.size == 1 && btf.type(btf.resolvedID(element)).name == "char")
        } else {
            Issue.record("task_struct.comm is \(comm.type), not an array of integers")
        }
        let listHead = try btf.structure(named: "list_head").id
        #expect(try btf.member("task_struct", path: "tasks").type == .structure(listHead))
        #expect(try btf.member("task_struct", path: "thread_group").type == .structure(listHead))
        #expect(try btf.member("signal_struct", path: "thread_head").type == .structure(listHead))

        let state = try btf.member("task_struct", path: "__state")
        #expect(state.size == 4 && state.offset == 24)
        let pid = try btf.member("task_struct", path: "pid"), tgid = try btf.member("task_struct", path: "tgid")
        #expect(pid.size == 4 && tgid.offset == pid.offset + 4)
        if case .integer(let int) = pid.type { #expect(int.isSigned) } else { Issue.record("pid is \(pid.type)") }
        #expect(pid.typeID != pid.resolvedTypeID)   // pid_t is a typedef

        let taskStruct = try btf.structure(named: "task_struct").id
        #expect(try btf.member("task_struct", path: "real_parent").pointee == taskStruct)
        #expect(try btf.member("task_struct", path: "mm").pointee == btf.structure(named: "mm_struct").id)
        #expect(try btf.member("task_struct", path: "stack").pointee == .void)
        #expect(try btf.member("task_struct", path: "signal").pointee == btf.structure(named: "signal_struct").id)

        let sp = try btf.member("task_struct", path: "thread.sp")
        #expect(sp.offset == (try offset("task_struct", "thread")) + (try offset("thread_struct", "sp")))
        #expect(sp.size == 8)

        // Values checked against pahole 1.24 on the Debian 6.1 guest kernel.
        #expect(try btf.size(ofStructure: "task_struct") == 9728)
        #expect(try offset("task_struct", "pid") == 2416)
        #expect(try offset("task_struct", "comm") == 2976)
        #expect(sp.offset == 5336)
        let bit = try btf.member("task_struct", path: "sched_task_hot")
        #expect(bit.bitfieldSize == 1 && bit.bitOffset == 2340 * 8 + 3 && bit.offset == 2340)
    }

    @Test func mmStructAndMapleTree() throws {
        // mm_struct keeps its fields in an anonymous struct.
        #expect(try btf.member("mm_struct", path: "pgd").pointee != nil)
        let mt = try btf.member("mm_struct", path: "mm_mt")
        #expect(try mt.type == .structure(btf.structure(named: "maple_tree").id) && mt.offset == 0)
        let root = try btf.member("mm_struct", path: "mm_mt.ma_root")
        #expect(root.offset == 8 && root.pointee == .void)
        for field in ["arg_start", "start_stack", "brk", "start_brk"] {
            #expect(try btf.member("mm_struct", path: field).size == 8)
        }
        #expect(try offset("mm_struct", "pgd") == 72)
        #expect(try offset("mm_struct", "start_brk") == 288)
        #expect(try offset("mm_struct", "brk") == 296)
        #expect(try offset("mm_struct", "start_stack") == 304)
        #expect(try offset("mm_struct", "arg_start") == 312)

        #expect(try btf.member("maple_range_64", path: "pivot").arrayCount == 15)
        #expect(try btf.member("maple_range_64", path: "slot").arrayCount == 16)
        #expect(try btf.member("maple_arange_64", path: "pivot").arrayCount == 9)
        #expect(try btf.member("maple_arange_64", path: "slot").arrayCount == 10)
        let meta = try btf.member("maple_range_64", path: "meta")   // inside an anonymous struct in an anonymous union
        #expect(try meta.offset == 248 && meta.type == .structure(btf.structure(named: "maple_metadata").id))
        #expect(try btf.member("maple_range_64", path: "meta.end").offset == 248)
        #expect(try btf.member("maple_metadata", path: "end").size == 1)

        #expect(try btf.enumValue("maple_type", "maple_dense") == 0)
        #expect(try btf.enumValue("maple_type", "maple_leaf_64") == 1)
        #expect(try btf.enumValue("maple_type", "maple_range_64") == 2)
        #expect(try btf.enumValue("maple_type", "maple_arange_64") == 3)
        #expect(try btf.enumerator(named: "maple_arange_64") == 3)
    }

    @Test func vmasFilesAndDentries() throws {
        #expect(try offset("vm_area_struct", "vm_start") == 0)
        #expect(try offset("vm_area_struct", "vm_end") == 8)
        #expect(try offset("vm_area_struct", "vm_flags") == 32)
        #expect(try offset("vm_area_struct", "vm_pgoff") == 104)
        let file = try btf.member("vm_area_struct", path: "vm_file")
        #expect(try file.offset == 112 && file.pointee == btf.structure(named: "file").id)
        #expect(try btf.member("file", path: "f_path").type == .structure(btf.structure(named: "path").id))
        #expect(try offset("file", "f_path.dentry") == 24)
        #expect(try btf.member("path", path: "dentry").pointee == btf.structure(named: "dentry").id)
        #expect(try offset("dentry", "d_name") == 32)
        #expect(try offset("dentry", "d_parent") == 24)
        #expect(try offset("dentry", "d_name.name") == 40)
        #expect(try offset("qstr", "name") == 8)
        #expect(try offset("qstr", "len") == 4)   // in an anonymous struct in an anonymous union
    }
}
