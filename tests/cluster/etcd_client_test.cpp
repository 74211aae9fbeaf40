// The etcd client of src/cluster against a real etcd (Debian's etcd-server) on loopback: keys, the
// compare-and-create a claim is, leases that take their keys with them, an endpoint list that fails over,
// and the errors a user reads.
#include "cluster/etcd_client.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cluster/cluster_node.hpp"
#include "support/etcd.hpp"
#include "support/test_data.hpp"

namespace vapipe::cluster {
namespace {

using nlohmann::json;

class EtcdClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    VAPIPE_REQUIRE_ETCD();
    etcd_ = std::make_unique<test::EtcdServer>(test::scratch_dir());
    ASSERT_TRUE(etcd_->start()) << "etcd did not start";
  }
  EtcdClient client() const { return EtcdClient(parse_etcd_url(etcd_->url())); }

  std::unique_ptr<test::EtcdServer> etcd_;
};

TEST_F(EtcdClientTest, KeysArePutReadByPrefixAndCreatedOnlyOnce) {
  EtcdClient etcd = client();
  etcd.put("/t/a", "1");
  etcd.put("/t/b", std::string("two\0bytes", 9));  // values are bytes (base64 on the wire)
  etcd.put("/u/c", "3");
  std::int64_t revision = 0;
  const auto under_t = etcd.range_prefix("/t/", &revision);
  ASSERT_EQ(under_t.size(), 2u);
  EXPECT_EQ(under_t[0].key, "/t/a");
  EXPECT_EQ(under_t[1].value, std::string("two\0bytes", 9));
  EXPECT_GE(revision, 3);

  std::int64_t created_at = 0;
  EXPECT_TRUE(etcd.create("/t/claim", "first", 0, &created_at));
  EXPECT_FALSE(etcd.create("/t/claim", "second"));
  const auto claim = etcd.get("/t/claim");
  ASSERT_TRUE(claim);
  EXPECT_EQ(claim->value, "first");
  EXPECT_EQ(claim->create_revision, created_at);
  // A delete fenced by the claim's revision: a stale revision deletes nothing.
  EXPECT_FALSE(etcd.txn({{TxnCompare::Target::kCreateRevision, "/t/claim", created_at - 1}},
                        {{TxnOp::Kind::kDelete, "/t/claim", {}, 0}}));
  EXPECT_TRUE(etcd.get("/t/claim"));
  EXPECT_TRUE(etcd.txn({{TxnCompare::Target::kCreateRevision, "/t/claim", created_at}},
                       {{TxnOp::Kind::kDelete, "/t/claim", {}, 0}}));
  EXPECT_FALSE(etcd.get("/t/claim"));
  EXPECT_EQ(etcd.erase("/u/c"), 1);
  EXPECT_EQ(etcd.erase("/u/c"), 0);
}

TEST_F(EtcdClientTest, ALeaseTakesItsKeysWithItAndAGoneLeaseIsReportedAsZero) {
  EtcdClient etcd = client();
  const std::int64_t lease = etcd.grant_lease(5);
  ASSERT_TRUE(etcd.create("/t/held", "x", lease));
  EXPECT_EQ(etcd.get("/t/held")->lease, lease);
  EXPECT_GT(etcd.keep_alive(lease), 0);
  etcd.revoke_lease(lease);
  EXPECT_FALSE(etcd.get("/t/held"));
  EXPECT_EQ(etcd.keep_alive(lease), 0);
  // A put under a lease etcd no longer has is refused as a whole: a claim never outlives its node.
  try {
    etcd.create("/t/late", "x", lease);
    ADD_FAILURE() << "a put under a revoked lease succeeded";
  } catch (const Error& error) {
    EXPECT_NE(std::string(error.what()).find("lease not found"), std::string::npos) << error.what();
  }
  EXPECT_FALSE(etcd.get("/t/late"));
}

TEST_F(EtcdClientTest, AnEndpointListFailsOverAndNoAnswerAtAllNamesEveryEndpoint) {
  const int dead = test::free_port();
  EtcdClient etcd(parse_etcd_url(fmt::format("etcd://127.0.0.1:{},127.0.0.1:{}", dead, etcd_->port())));
  etcd.put("/t/k", "v");
  EXPECT_EQ(etcd.get("/t/k")->value, "v");

  EtcdClient nobody(parse_etcd_url(fmt::format("etcd://127.0.0.1:{}", dead)), std::chrono::milliseconds(500));
  try {
    nobody.get("/t/k");
    ADD_FAILURE() << "no error from an endpoint nobody listens on";
  } catch (const EtcdUnavailable& error) {
    EXPECT_NE(std::string(error.what()).find(fmt::format("http://127.0.0.1:{}", dead)), std::string::npos)
        << error.what();
  }
}

TEST(EtcdUrl, TheClusterOptionIsParsedOrRefusedByName) {
  const auto endpoints = parse_etcd_url("etcd://a:1,b");
  ASSERT_EQ(endpoints.size(), 2u);
  EXPECT_EQ(endpoints[0].to_string(), "http://a:1");
  EXPECT_EQ(endpoints[1].port, 2379);
  for (const char* bad : {"http://a:2379", "etcd://", "etcd://a:x", "etcd://a:70000", "etcd://a:1,,b"}) {
    try {
      parse_etcd_url(bad);
      ADD_FAILURE() << bad << " was accepted";
    } catch (const Error& error) {
      EXPECT_NE(std::string(error.what()).find("--cluster"), std::string::npos) << error.what();
    }
  }
}

TEST(ConfigHash, NodeListenersDoNotCountAndEveryOtherKeyDoes) {
  const json base = json::parse(R"({"cards": [{"cameras": [{"address": "a.mp4"}]}],
                                    "models": [{"name": "det", "obj_threshold": 0.25}],
                                    "http": {"port": 8080}, "rtsp_server": {"port": 8554}})");
  json other_ports = base;
  other_ports["http"]["port"] = 8081;
  other_ports["rtsp_server"]["port"] = 8555;
  EXPECT_EQ(config_hash(config_section_hashes(base)), config_hash(config_section_hashes(other_ports)));
  json other_threshold = base;
  other_threshold["models"][0]["obj_threshold"] = 0.5;
  const auto a = config_section_hashes(base);
  const auto b = config_section_hashes(other_threshold);
  EXPECT_NE(config_hash(a), config_hash(b));
  EXPECT_EQ(a.at("cards"), b.at("cards"));
  EXPECT_NE(a.at("models"), b.at("models"));
}

TEST(FairShares, SharesDifferByOneAtMostAndNoneExceedsItsCapacity) {
  EXPECT_EQ(fair_shares({{"a", 0}, {"b", 0}, {"c", 0}}, 12),
            (std::map<std::string, int>{{"a", 4}, {"b", 4}, {"c", 4}}));
  EXPECT_EQ(fair_shares({{"a", 0}, {"b", 0}, {"c", 0}}, 13),
            (std::map<std::string, int>{{"a", 5}, {"b", 4}, {"c", 4}}));
  // A full node's remainder goes to the others; capacity short of the channels leaves the rest unclaimed.
  EXPECT_EQ(fair_shares({{"a", 2}, {"b", 0}, {"c", 0}}, 12),
            (std::map<std::string, int>{{"a", 2}, {"b", 5}, {"c", 5}}));
  EXPECT_EQ(fair_shares({{"a", 2}, {"b", 3}}, 12), (std::map<std::string, int>{{"a", 2}, {"b", 3}}));
  EXPECT_EQ(fair_shares({{"a", 0}}, 0), (std::map<std::string, int>{{"a", 0}}));
  EXPECT_TRUE(fair_shares({}, 5).empty());
}

}  // namespace
}  // namespace vapipe::cluster
