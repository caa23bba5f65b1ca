// The verdict as JUnit XML, the one test-result format every CI system reads (Jenkins,
// GitLab, GitHub's test reporters, Surefire): `testsuites` > a `testsuite` per strategy > a
// `testcase` per invariant and per threshold. A value first, rendered last, so the tests read
// its cases as well as its XML.
import Foundation

public struct JUnitDocument: Sendable, Equatable {
    public enum Outcome: Sendable, Equatable {
        case passed
        /// Counted in `failures`: what fails the job. `type` is `invariant`, `threshold` or `target`.
        case failed(type: String, message: String, details: String)
        /// Counted in `skipped`: not judged (no history), or a baseline's finding, which is
        /// shown but never fails the job.
        case skipped(message: String)
    }

    public struct TestCase: Sendable, Equatable {
        public var name: String
        public var classname: String
        public var seconds: Double
        public var outcome: Outcome
        /// What a reader of the case wants beside its outcome: a baseline finding's
        /// counterexamples, an invariant's detail.
        public var output: String?
    }

    public struct Property: Sendable, Equatable {
        public var name: String
        public var value: String
    }

    public struct Suite: Sendable, Equatable {
        public var name: String
        public var startedAt: Date
        public var seconds: Double
        public var properties: [Property]
        public var cases: [TestCase]
        public var output: String?

        public var failures: Int { cases.filter { if case .failed = $0.outcome { true } else { false } }.count }
        public var skipped: Int { cases.filter { if case .skipped = $0.outcome { true } else { false } }.count }
    }

    public var name: String
    public var suites: [Suite]

    public var failures: Int { suites.reduce(0) { $0 + $1.failures } }

    public var xml: String {
        let tests = suites.reduce(0) { $0 + $1.cases.count }
        let skipped = suites.reduce(0) { $0 + $1.skipped }
        let seconds = suites.reduce(0) { $0 + $1.seconds }
        var xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        xml +=
            "<testsuites name=\(Self.attribute(name)) tests=\"\(tests)\" failures=\"\(failures)\" errors=\"0\" skipped=\"\(skipped)\" time=\(Self.attribute(Self.seconds(seconds)))"
        xml += suites.first.map { " timestamp=\(Self.attribute(Self.timestamp($0.startedAt)))" } ?? ""
        xml += ">\n"
        for suite in suites {
            xml +=
                "  <testsuite name=\(Self.attribute(suite.name)) tests=\"\(suite.cases.count)\" failures=\"\(suite.failures)\" errors=\"0\" skipped=\"\(suite.skipped)\" time=\(Self.attribute(Self.seconds(suite.seconds))) timestamp=\(Self.attribute(Self.timestamp(suite.startedAt)))>\n"
            if !suite.properties.isEmpty {
                xml += "    <properties>\n"
                for property in suite.properties {
                    xml +=
                        "      <property name=\(Self.attribute(property.name)) value=\(Self.attribute(property.value))/>\n"
                }
                xml += "    </properties>\n"
            }
            for test in suite.cases {
                xml +=
                    "    <testcase name=\(Self.attribute(test.name)) classname=\(Self.attribute(test.classname)) time=\(Self.attribute(Self.seconds(test.seconds)))"
                if test.outcome == .passed && test.output == nil {
                    xml += "/>\n"
                    continue
                }
                xml += ">\n"
                switch test.outcome {
                case .passed: break
                case .failed(let type, let message, let details):
                    xml +=
                        "      <failure message=\(Self.attribute(message)) type=\(Self.attribute(type))>\(Self.text(details))</failure>\n"
                case .skipped(let message):
                    xml += "      <skipped message=\(Self.attribute(message))/>\n"
                }
                if let output = test.output { xml += "      <system-out>\(Self.text(output))</system-out>\n" }
                xml += "    </testcase>\n"
            }
            if let output = suite.output { xml += "    <system-out>\(Self.text(output))</system-out>\n" }
            xml += "  </testsuite>\n"
        }
        xml += "</testsuites>\n"
        return xml
    }

    // MARK: - XML text

    /// Seconds as JUnit readers parse them: a plain decimal, no exponent.
    static func seconds(_ value: Double) -> String {
        String(format: "%.3f", value.isFinite ? max(0, value) : 0)
    }

    /// ISO 8601 in UTC, as Ant's task wrote it and xs:dateTime accepts.
    static func timestamp(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: date)
    }

    /// A quoted attribute value.
    static func attribute(_ value: String) -> String {
        "\"" + escaped(value, quotes: true) + "\""
    }

    static func text(_ value: String) -> String { escaped(value, quotes: false) }

    /// Markup characters escaped, and the characters XML 1.0 cannot carry at all (controls
    /// other than tab, newline and return) replaced: a counterexample quotes what a server or
    /// a database said, which may hold anything.
    static func escaped(_ value: String, quotes: Bool) -> String {
        var out = ""
        out.reserveCapacity(value.utf8.count)
        for scalar in value.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"" where quotes: out += "&quot;"
            case "\n" where quotes: out += "&#10;"
            case "\t" where quotes: out += "&#9;"
            case "\r" where quotes: out += "&#13;"
            case "\t", "\n", "\r": out.unicodeScalars.append(scalar)
            case _ where scalar.value < 0x20 || (0xFFFE...0xFFFF).contains(scalar.value): out += "\u{FFFD}"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}
