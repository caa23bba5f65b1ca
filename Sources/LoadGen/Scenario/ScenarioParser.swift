// Scenario YAML → a validated `Scenario`. Every problem is collected (not just the first),
// each with its file, line, column and field; unknown fields are errors with a "did you
// mean" when a known one is near, because a misspelt `stcok:` silently ignored would make
// a load test measure the wrong thing.
import Engine
import Foundation
import Yams

public enum ScenarioParser {
    public static func parse(contentsOf path: String) -> Result<Scenario, ScenarioError> {
        guard let data = FileManager.default.contents(atPath: path) else {
            return .failure(
                ScenarioError(problems: [
                    ScenarioProblem(
                        file: path, line: 0, column: 0, field: "",
                        message: "cannot read the file: \(whyUnreadable(path))")
                ]))
        }
        return parse(yaml: String(decoding: data, as: UTF8.self), file: path)
    }

    /// The system's reason a path gives no contents.
    static func whyUnreadable(_ path: String) -> String {
        UnreadableFile.reason(path, what: "a scenario file") { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }
    }

    public static func parse(yaml: String, file: String) -> Result<Scenario, ScenarioError> {
        var reader = NodeReader(file: file)
        let root: Node?
        do {
            // A byte-order mark (editors on Windows write one) is not part of the YAML: the
            // parser would refuse the first line for it.
            root = try Yams.compose(yaml: yaml.hasPrefix("\u{FEFF}") ? String(yaml.dropFirst()) : yaml)
        } catch let error as YamlError {
            return .failure(ScenarioError(problems: [reader.syntaxProblem(error)]))
        } catch {
            return .failure(
                ScenarioError(problems: [
                    ScenarioProblem(file: file, line: 0, column: 0, field: "", message: "\(error)")
                ]))
        }
        guard let root else {
            return .failure(
                ScenarioError(problems: [
                    ScenarioProblem(file: file, line: 1, column: 1, field: "", message: "the file is empty")
                ]))
        }
        let scenario = reader.scenario(root)
        if let scenario, reader.problems.isEmpty { return .success(scenario) }
        return .failure(ScenarioError(problems: reader.problems))
    }
}

/// Walks the node tree, recording problems instead of stopping at the first.
struct NodeReader {
    let file: String
    var problems: [ScenarioProblem] = []

    struct Fields {
        let node: Node
        let path: String
        var values: [String: Node]

        func path(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }
    }

    mutating func problem(at node: Node?, _ field: String, _ message: String) {
        problems.append(
            ScenarioProblem(
                file: file, line: node?.mark?.line ?? 0, column: node?.mark?.column ?? 0, field: field, message: message
            ))
    }

    func syntaxProblem(_ error: YamlError) -> ScenarioProblem {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _),
            .composer(_, let problem, let mark, _):
            ScenarioProblem(
                file: file, line: mark.line, column: mark.column, field: "", message: "YAML syntax: \(problem)")
        default:
            ScenarioProblem(file: file, line: 0, column: 0, field: "", message: "YAML: \(error)")
        }
    }

    /// A mapping's fields, with unknown and duplicate keys reported.
    mutating func fields(_ node: Node, _ path: String, known: [String], required: [String] = []) -> Fields? {
        guard let mapping = node.mapping else {
            problem(at: node, path, "expected a mapping with fields \(known.joined(separator: ", "))")
            return nil
        }
        var values: [String: Node] = [:]
        for (keyNode, value) in mapping {
            guard let key = keyNode.string else {
                problem(at: keyNode, path, "field names must be strings")
                continue
            }
            let fieldPath = path.isEmpty ? key : "\(path).\(key)"
            if !known.contains(key) {
                let hint = Suggestion.nearest(to: key, among: known).map { "; did you mean `\($0)`?" } ?? ""
                problem(at: keyNode, fieldPath, "unknown field\(hint) (known: \(known.joined(separator: ", ")))")
            } else if values[key] != nil {
                problem(at: keyNode, fieldPath, "appears twice")
            } else {
                values[key] = value
            }
        }
        let fields = Fields(node: node, path: path, values: values)
        for key in required where values[key] == nil {
            problem(at: node, fields.path(key), "is required")
        }
        return fields
    }

    mutating func string(_ fields: Fields, _ key: String) -> String? {
        guard let node = fields.values[key] else { return nil }
        guard case .scalar = node, let text = node.string, !text.isEmpty else {
            problem(at: node, fields.path(key), "expected text")
            return nil
        }
        return text
    }

    mutating func integer(_ fields: Fields, _ key: String, in range: ClosedRange<Int>) -> Int? {
        guard let node = fields.values[key] else { return nil }
        return integer(node, fields.path(key), in: range)
    }

    mutating func integer(_ node: Node, _ path: String, in range: ClosedRange<Int>) -> Int? {
        numeric(node, path, in: range, expected: "a whole number") { Int($0) }
    }

    mutating func number(_ fields: Fields, _ key: String, in range: ClosedRange<Double>) -> Double? {
        guard let node = fields.values[key] else { return nil }
        return numeric(node, fields.path(key), in: range, expected: "a number") {
            Double($0).flatMap { $0.isFinite ? $0 : nil }
        }
    }

    /// A scalar read by `parse` (underscores allowed as digit separators) and checked against `range`.
    private mutating func numeric<T: Comparable>(
        _ node: Node, _ path: String, in range: ClosedRange<T>, expected: String,
        _ parse: (String) -> T?
    ) -> T? {
        guard case .scalar = node, let text = node.string,
            let value = parse(text.replacingOccurrences(of: "_", with: ""))
        else {
            problem(at: node, path, "expected \(expected)")
            return nil
        }
        guard range.contains(value) else {
            problem(at: node, path, "\(value) is out of range \(range.lowerBound)…\(range.upperBound)")
            return nil
        }
        return value
    }

    /// A duration string (`250ms`, `2s`, `1m`) in milliseconds.
    mutating func duration(_ fields: Fields, _ key: String, in range: ClosedRange<Double>) -> Double? {
        guard let node = fields.values[key] else { return nil }
        return duration(node, fields.path(key), in: range)
    }

    mutating func duration(_ node: Node, _ path: String, in range: ClosedRange<Double>) -> Double? {
        guard case .scalar = node, let text = node.string else {
            problem(at: node, path, "expected a duration such as 250ms, 2s or 1m")
            return nil
        }
        guard let milliseconds = ScenarioDuration.milliseconds(text) ?? (text == "0" ? 0 : nil) else {
            problem(at: node, path, "`\(text)` is not a duration; write a number with a unit: 250ms, 2s, 1m")
            return nil
        }
        guard range.contains(milliseconds) else {
            problem(
                at: node, path,
                "\(text) is out of range \(ScenarioDuration.text(milliseconds: range.lowerBound))…\(ScenarioDuration.text(milliseconds: range.upperBound))"
            )
            return nil
        }
        return milliseconds
    }

    mutating func sequence(_ fields: Fields, _ key: String) -> [Node]? {
        guard let node = fields.values[key] else { return nil }
        guard case .sequence(let items) = node else {
            problem(at: node, fields.path(key), "expected a list")
            return nil
        }
        return Array(items)
    }

    /// The one key of a single-key mapping such as `{ramp: {...}}`.
    mutating func variant(_ node: Node, _ path: String, known: [String]) -> (String, Node)? {
        guard let fields = fields(node, path, known: known) else { return nil }
        guard fields.values.count == 1, let (key, value) = fields.values.first else {
            if fields.values.count > 1 {
                problem(at: node, path, "give exactly one of \(known.joined(separator: ", "))")
            }
            return nil
        }
        return (key, value)
    }
}
