// The claim routes' paths as the router declares them (route templates): one statement for the
// routes, the OpenAPI document, the shedding handler, the forwarder and the metrics' labels.
import Engine

enum ClaimRoutes {
    static let reserve = "/v1/drops/{id}/reserve"
    static let purchase = "/v1/drops/{id}/purchase"
    static let cancel = "/v1/drops/{id}/reservation"
    static let all = [reserve, purchase, cancel]

    /// What comes before and after `{id}` in a template.
    static func parts(of template: String) -> (prefix: Substring, suffix: Substring) {
        let id = template.range(of: "{id}")!
        return (template[..<id.lowerBound], template[id.upperBound...])
    }

    /// The drop a claim route's path names (`/v1/drops/7/reserve` → 7), else nil.
    static func drop(inPath path: String) -> DropID? {
        for template in all {
            let (prefix, suffix) = parts(of: template)
            guard path.hasPrefix(prefix), path.hasSuffix(suffix), path.count > prefix.count + suffix.count else {
                continue
            }
            let id = path.dropFirst(prefix.count).dropLast(suffix.count)
            return id.contains("/") ? nil : DropID(id)
        }
        return nil
    }
}
