import SchedulerCore
import Testing

@Suite("Host policy: ALLOWED_HOSTS and PUBLIC_URL")
struct HostPolicyTests {
    @Test("Django's rules: exact names, a leading dot for a domain and its subdomains, * for any; the port does not count")
    func matching() throws {
        let policy = try #require(HostPolicy(allowedHosts: "api.example.org, .tenants.example.net,10.0.0.5,[::1]", publicURL: nil))
        for allowed in [
            "api.example.org", "API.Example.org:8000", "tenants.example.net", "a.b.tenants.example.net:443", "10.0.0.5:80", "[::1]:8000",
        ] {
            #expect(policy.allows(authority: allowed), "\(allowed)")
        }
        for refused in [
            "evil.example", "api.example.org.evil.example", "xtenants.example.net", "example.org", "api.example.org:80:80",
            "api.example.org:x", "", "a b", "api.example.org\r\nX: y", "[::1", "[::2]", "localhost",
        ] {
            #expect(!policy.allows(authority: refused), "\(refused)")
        }
        let any = try #require(HostPolicy(allowedHosts: "*", publicURL: nil))
        #expect(any.allows(authority: "anything.example:1"))
        #expect(!any.allows(authority: "bad host"))
    }

    @Test("absolute URLs come from PUBLIC_URL, else an allowed Host, else the first allowed name; never from another Host")
    func base() throws {
        let standard = HostPolicy()
        #expect(standard.base(authority: "127.0.0.1:8000", useSSL: false) == "http://127.0.0.1:8000")
        #expect(standard.base(authority: "evil.example", useSSL: true) == "https://localhost")
        #expect(standard.base(authority: nil, useSSL: false) == "http://localhost")
        let published = try #require(HostPolicy(allowedHosts: nil, publicURL: "https://scheduler.example.org/"))
        #expect(published.base(authority: "127.0.0.1:8000", useSSL: false) == "https://scheduler.example.org")
        #expect(published.allows(authority: "scheduler.example.org"))
        let named = try #require(HostPolicy(allowedHosts: ".example.org,api.example.org", publicURL: nil))
        #expect(named.base(authority: "evil.example", useSSL: false) == "http://api.example.org")
    }

    @Test(
        "malformed settings are refused",
        arguments: [("a b", nil), ("ok.example", "ftp://x.example"), (nil, "https://x.example/?q=1"), (nil, "not a url")]
            as [(String?, String?)])
    func malformed(hosts: String?, publicURL: String?) {
        #expect(HostPolicy(allowedHosts: hosts, publicURL: publicURL) == nil)
    }
}
