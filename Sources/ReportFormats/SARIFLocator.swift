import Foundation
import LeakAnalysis

/// Turns frames into SARIF locations: source files under the source root become relative URIs
/// against `%SRCROOT%`, other absolute paths `file://` URIs; a frame with no source file is
/// located at its module (the ELF file) with its function as a logical location.
struct SARIFLocator {
    /// The root's path with a trailing slash (nil: no root given).
    let root: String?

    init(sourceRoot: String?) {
        root = sourceRoot.map { path in
            let standard = URL(fileURLWithPath: path).standardized.path
            return standard.hasSuffix("/") ? standard : standard + "/"
        }
    }

    /// `%SRCROOT%`'s absolute URI.
    var rootURI: String? { root.map { "file://" + Self.encode($0) } }

    func location(_ frame: ReportFrame, fallback module: String?) -> SARIF.Location {
        let logical = frame.function.map { [SARIF.LogicalLocation(name: $0, kind: "function")] }
        if let file = frame.file {
            return SARIF.Location(physicalLocation: SARIF.PhysicalLocation(artifactLocation: artifact(file),
                                                                           region: frame.line.flatMap { $0 > 0 ? SARIF.Region(startLine: $0) : nil }),
                                  logicalLocations: logical, message: nil)
        }
        if let module = frame.module ?? module {
            return SARIF.Location(physicalLocation: SARIF.PhysicalLocation(artifactLocation: artifact(module), region: nil),
                                  logicalLocations: logical, message: nil)
        }
        return SARIF.Location(physicalLocation: nil,
                              logicalLocations: [SARIF.LogicalLocation(name: FrameNaming.name(frame), kind: "function")], message: nil)
    }

    func artifact(_ path: String) -> SARIF.ArtifactLocation {
        guard path.hasPrefix("/") else { return SARIF.ArtifactLocation(uri: Self.encode(path), uriBaseId: root == nil ? nil : "%SRCROOT%") }
        let standard = URL(fileURLWithPath: path).standardized.path
        if let root, standard.hasPrefix(root) {
            return SARIF.ArtifactLocation(uri: Self.encode(String(standard.dropFirst(root.count))), uriBaseId: "%SRCROOT%")
        }
        return SARIF.ArtifactLocation(uri: "file://" + Self.encode(standard), uriBaseId: nil)
    }

    /// Percent-encodes what a URI path may not hold.
    static func encode(_ path: String) -> String {
        var allowed = CharacterSet.urlPathAllowed
        allowed.remove(charactersIn: ";?#[]")
        return path.addingPercentEncoding(withAllowedCharacters: allowed) ?? path
    }
}
