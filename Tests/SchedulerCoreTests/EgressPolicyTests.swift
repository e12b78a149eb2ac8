import SchedulerCore
import Testing

/// The egress guard's judgement of addresses, in every spelling a resolver accepts.
@Suite struct EgressPolicyTests {
    let guarded = EgressPolicy()

    @Test(arguments: [
        // Loopback, link-local (cloud metadata), private, carrier-grade NAT, this network, multicast, reserved.
        "127.0.0.1", "127.255.255.254", "169.254.169.254", "10.0.0.1", "172.16.0.1", "172.31.255.255", "192.168.1.1",
        "100.64.0.1", "100.127.255.255", "0.0.0.0", "0.1.2.3", "224.0.0.1", "239.255.255.255", "240.0.0.1", "255.255.255.255",
        // IPv6: loopback, unspecified, link-local, unique-local, multicast.
        "::1", "::", "fe80::1", "fd00::1", "fc12:3456::1", "ff02::1",
        // IPv4 inside IPv6: mapped, NAT64, compatible.
        "::ffff:127.0.0.1", "::ffff:a9fe:a9fe", "64:ff9b::10.0.0.1", "::10.0.0.1",
    ])
    func refusedByDefault(_ text: String) throws {
        let address = try #require(IPAddress(text), "\(text) parses")
        #expect(guarded.refusal(for: address) != nil, "\(text) is refused")
    }

    @Test(arguments: ["93.184.216.34", "8.8.8.8", "172.32.0.1", "100.128.0.1", "169.255.0.1", "2606:4700::1111", "::ffff:8.8.8.8"])
    func publicAddressesPass(_ text: String) throws {
        let address = try #require(IPAddress(text))
        #expect(guarded.refusal(for: address) == nil, "\(text) may be reached")
    }

    @Test(arguments: [
        ("2852039166", "169.254.169.254"), ("0xA9FEA9FE", "169.254.169.254"), ("0251.0376.0251.0376", "169.254.169.254"),
        ("127.1", "127.0.0.1"), ("0x7f.1", "127.0.0.1"), ("017700000001", "127.0.0.1"), ("10.1", "10.0.0.1"),
    ])
    func numericSpellingsAreTheAddressTheyMean(_ text: String, _ meant: String) throws {
        #expect(IPAddress(numericIPv4: text) == IPAddress(meant))
        #expect(guarded.refusal(forHost: text) != nil, "\(text) is refused")
    }

    @Test(arguments: [
        "http://127.0.0.1:15672/", "http://[::1]/", "http://2852039166/", "http://[::ffff:169.254.169.254]/x", "https://10.0.0.1/",
    ])
    func literalEndpointsAreRefused(_ url: String) {
        #expect(guarded.refusal(forURL: url) != nil, "\(url)")
    }

    @Test(arguments: ["http://example.com/", "http://metadata.google.internal/", "https://93.184.216.34/"])
    func hostNamesAreJudgedLater(_ url: String) {
        // A name is judged on the address it resolves to, at delivery.
        #expect(guarded.refusal(forURL: url) == nil)
    }

    @Test func allowOpensExactlyWhatItNames() throws {
        let policy = try #require(EgressPolicy(allow: "10.1.0.0/16, 127.0.0.1, fd00::/8, hooks.internal"))
        #expect(policy.refusal(for: IPAddress("10.1.2.3")!) == nil)
        #expect(policy.refusal(for: IPAddress("10.2.0.1")!) != nil, "only the /16")
        #expect(policy.refusal(for: IPAddress("127.0.0.1")!) == nil)
        #expect(policy.refusal(for: IPAddress("127.0.0.2")!) != nil, "a bare address is a /32")
        #expect(policy.refusal(for: IPAddress("::ffff:127.0.0.1")!) == nil, "its mapped spelling too")
        #expect(policy.refusal(for: IPAddress("fd12::1")!) == nil)
        #expect(policy.refusal(for: IPAddress("fe80::1")!) != nil)
        #expect(policy.allows(host: "HOOKS.internal"))
        #expect(!policy.allows(host: "other.internal"))
        #expect(policy.refusal(forURL: "http://hooks.internal/x") == nil)
    }

    @Test(arguments: ["10.0.0.0/33", "::1/129", "a b", "10.0.0.0/", "bad/host"])
    func malformedAllowListsAreRefused(_ text: String) {
        #expect(EgressPolicy(allow: text) == nil, "\(text)")
    }

    @Test(arguments: ["256.0.0.1", "1.2.3", "1..2.3", "::1::2", "1:2:3:4:5:6:7:8:9", "fe80::1%eth0", "", "12345::", "0x1ffffffff"])
    func malformedAddressesDoNotParse(_ text: String) {
        #expect(IPAddress(text) == nil, "\(text)")
        if text == "0x1ffffffff" { #expect(IPAddress(numericIPv4: text) == nil, "more than 32 bits") }
    }
}
