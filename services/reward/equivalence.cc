#include "services/reward/equivalence.h"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "common/status.h"
#include "services/reward/math_eval.h"

namespace sfpo {
namespace {

// Deterministic, "generic" rational sample values, never integers (so parities and small
// coincidences do not line up), distinct between variables at a point. Points 0 and 1 give
// every variable a positive value (one above 1, one in (0, 1)) so that square roots and logs
// have somewhere to be defined; later points mix signs per variable, so |x| differs from x
// and |xy| from -xy.
Rational SampleValue(int var_index, int point) {
  static constexpr long kNum[16] = {7, 5, 3, 13, 29, 2, 17, 31, 11, 19, 23, 37, 41, 43, 47, 53};
  static constexpr long kDen[8] = {3, 7, 11, 4, 9, 13, 6, 17};
  uint64_t h = static_cast<uint64_t>(point) * 0x9E3779B97F4A7C15ULL + 0x632BE59BD9B4E019ULL;
  h ^= h >> 29;
  h *= 0xBF58476D1CE4E5B9ULL;
  h ^= h >> 32;
  int base = point < 2 ? 3 * point : static_cast<int>(h % 16);
  int idx = (base + 5 * var_index) % 16;
  long num = kNum[idx];
  long den = kDen[(idx + point) % 8];
  if (point == 1 && num > den) std::swap(num, den);
  uint64_t s = (h ^ (static_cast<uint64_t>(var_index + 1) * 0xD6E8FEB86659FD93ULL));
  s ^= s >> 31;
  s *= 0x94D049BB133111EBULL;
  s ^= s >> 29;
  if (point >= 2 && (s & 1)) num = -num;
  Rational value(num, static_cast<unsigned long>(den));
  if (value.IsInteger()) value = Rational(num * 7 + 1, 7);
  return value;
}

bool IsBound(const absl::Status& s) { return IsBoundError(s); }

class Comparer {
 public:
  Comparer(const Ast& gold, const Ast& pred, const EquivalenceOptions& options, Budget* budget)
      : g_(gold), p_(pred), options_(options), budget_(budget) {}

  absl::StatusOr<bool> Run() { return Compare(g_.root, p_.root, 0); }

 private:
  // A side is a subtree; with kVariant set in `mask`, one sign choice of its \pm nodes (the
  // low bits pick the signs), which is always compared as a scalar.
  struct Side {
    const Ast* ast;
    int node;
    uint32_t mask;
  };
  static constexpr uint32_t kVariant = 1u << 31;

  enum class CKind { kScalar, kTuple, kSet, kList, kPmList, kUnion, kEmpty };
  struct Collection {
    CKind kind = CKind::kScalar;
    char open = 0;
    char close = 0;
    std::vector<Side> elems;
  };

  struct Bound {
    const Ast* ast = nullptr;
    int node = -1;
    int inf = 0;  // -1: -oo, +1: +oo, 0: finite
    bool closed = false;
  };
  struct Interval {
    Bound lo, hi;
  };

  const Node& N(const Side& s) const { return s.ast->nodes[s.node]; }

  static bool IsRel(const Ast& ast, int id) { return ast.nodes[id].kind == NodeKind::kRel; }

  // "x = 5", "f(x) = 2x", "x \in [1, 2]": returns the value side, or -1.
  static int AssignedValue(const Ast& ast, int id) {
    const Node& n = ast.nodes[id];
    if (n.kind != NodeKind::kRel || n.text.size() != 1 || (n.text[0] != '=' && n.text[0] != 'i')) {
      return -1;
    }
    auto is_name = [&](int k) {
      const Node& m = ast.nodes[k];
      if (m.kind == NodeKind::kVar) return true;
      return m.kind == NodeKind::kMul && ast.nodes[m.kids[0]].kind == NodeKind::kVar &&
             ast.nodes[m.kids[1]].kind == NodeKind::kVar;
    };
    if (is_name(n.kids[0])) return n.kids[1];
    if (n.text[0] == '=' && ast.nodes[n.kids[1]].kind == NodeKind::kVar) return n.kids[0];
    return -1;
  }

  static int CountPm(const Ast& ast, int id, int depth = 0) {
    if (depth > 512) return 0;
    const Node& n = ast.nodes[id];
    int count = n.kind == NodeKind::kPm ? 1 : 0;
    for (int k : n.kids) count += CountPm(ast, k, depth + 1);
    return count;
  }

  static bool IsScalarKind(NodeKind k) {
    return k != NodeKind::kTuple && k != NodeKind::kSet && k != NodeKind::kEmptySet &&
           k != NodeKind::kUnion && k != NodeKind::kIntersect && k != NodeKind::kRel &&
           k != NodeKind::kList;
  }

  Collection AsCollection(const Ast& ast, int id) const {
    Collection c;
    const Node& n = ast.nodes[id];
    auto all_kids = [&]() {
      for (int k : n.kids) c.elems.push_back({&ast, k, 0});
    };
    switch (n.kind) {
      case NodeKind::kTuple:
        c.kind = CKind::kTuple;
        c.open = n.open;
        c.close = n.close;
        all_kids();
        return c;
      case NodeKind::kSet:
        c.kind = CKind::kSet;
        all_kids();
        return c;
      case NodeKind::kEmptySet:
        c.kind = CKind::kEmpty;
        return c;
      case NodeKind::kList:
        c.kind = CKind::kList;
        all_kids();
        return c;
      case NodeKind::kUnion:
        c.kind = CKind::kUnion;
        all_kids();
        return c;
      default:
        break;
    }
    int pms = IsScalarKind(n.kind) ? CountPm(ast, id) : 0;
    if (pms > 0 && pms <= 4) {
      c.kind = CKind::kPmList;
      for (uint32_t mask = 0; mask < (1u << pms); ++mask) {
        c.elems.push_back({&ast, id, mask | kVariant});
      }
      return c;
    }
    c.kind = CKind::kScalar;
    c.elems.push_back({&ast, id, 0});
    return c;
  }

  absl::StatusOr<bool> Compare(int g, int p, int depth) {
    return CompareSides({&g_, g, 0}, {&p_, p, 0}, depth);
  }

  absl::StatusOr<bool> CompareSides(const Side& a, const Side& b, int depth) {
    SFPO_RETURN_IF_ERROR(budget_->Tick());
    if (depth > budget_->limits().max_depth) {
      return BoundExceeded("too_deep", "the answers nest deeper than the limit");
    }
    if (a.mask != 0 || b.mask != 0) return CompareScalars(a, b);
    const Ast& aa = *a.ast;
    const Ast& ba = *b.ast;
    bool a_rel = IsRel(aa, a.node);
    bool b_rel = IsRel(ba, b.node);
    if (options_.strip_assignment && a_rel != b_rel) {
      int av = a_rel ? AssignedValue(aa, a.node) : -1;
      int bv = b_rel ? AssignedValue(ba, b.node) : -1;
      if (av >= 0) return CompareSides({&aa, av, 0}, b, depth + 1);
      if (bv >= 0) return CompareSides(a, {&ba, bv, 0}, depth + 1);
    }
    if (a_rel && b_rel) return CompareRelations(a, b, depth);
    if (a_rel || b_rel) {
      Interval ia, ib;
      if (ToInterval(a, &ia) && ToInterval(b, &ib)) return CompareIntervals(ia, ib, depth);
      return false;
    }
    Collection ca = AsCollection(aa, a.node);
    Collection cb = AsCollection(ba, b.node);
    if (ca.kind == CKind::kScalar && cb.kind == CKind::kScalar) return CompareScalars(a, b);
    return CompareCollections(ca, cb, depth);
  }

  absl::StatusOr<bool> Ordered(const Collection& a, const Collection& b, int depth) {
    if (a.elems.size() != b.elems.size()) return false;
    for (size_t i = 0; i < a.elems.size(); ++i) {
      SFPO_ASSIGN_OR_RETURN(bool eq, CompareSides(a.elems[i], b.elems[i], depth + 1));
      if (!eq) return false;
    }
    return true;
  }

  absl::StatusOr<bool> Unordered(const Collection& a, const Collection& b, bool set_semantics,
                                 int depth) {
    if (a.elems.size() == b.elems.size()) {
      std::vector<bool> used(b.elems.size(), false);
      bool all = true;
      for (const Side& x : a.elems) {
        bool found = false;
        for (size_t j = 0; j < b.elems.size(); ++j) {
          if (used[j]) continue;
          SFPO_ASSIGN_OR_RETURN(bool eq, CompareSides(x, b.elems[j], depth + 1));
          if (eq) {
            used[j] = true;
            found = true;
            break;
          }
        }
        if (!found) {
          all = false;
          break;
        }
      }
      if (all || !set_semantics) return all;
    }
    if (!set_semantics) return false;
    // Sets ignore repetition: every element of each side has an equal on the other side.
    for (int pass = 0; pass < 2; ++pass) {
      const Collection& from = pass == 0 ? a : b;
      const Collection& to = pass == 0 ? b : a;
      for (const Side& x : from.elems) {
        bool found = false;
        for (const Side& y : to.elems) {
          SFPO_ASSIGN_OR_RETURN(bool eq, pass == 0 ? CompareSides(x, y, depth + 1)
                                                   : CompareSides(y, x, depth + 1));
          if (eq) {
            found = true;
            break;
          }
        }
        if (!found) return false;
      }
    }
    return true;
  }

  absl::StatusOr<bool> CompareCollections(const Collection& a, const Collection& b, int depth) {
    auto empty = [](const Collection& c) {
      return c.kind == CKind::kEmpty || (c.kind == CKind::kSet && c.elems.empty());
    };
    if (empty(a) || empty(b)) return empty(a) && empty(b);
    auto paren_tuple = [](const Collection& c) {
      return c.kind == CKind::kTuple && c.open == '(' && c.close == ')';
    };
    if (a.kind == CKind::kTuple || b.kind == CKind::kTuple) {
      if (a.kind == CKind::kTuple && b.kind == CKind::kTuple) {
        if (a.open != b.open || a.close != b.close) {
          // An interval written with infinite ends: "[2, \infty)" vs "[2, \infty]" is sloppy
          // but the same set; compare as intervals.
          return CompareTupleIntervals(a, b, depth);
        }
        return Ordered(a, b, depth);
      }
      if ((paren_tuple(a) && b.kind == CKind::kList) || (paren_tuple(b) && a.kind == CKind::kList)) {
        return Ordered(a, b, depth);
      }
      return false;
    }
    if (a.kind == CKind::kScalar || b.kind == CKind::kScalar) {
      const Collection& other = a.kind == CKind::kScalar ? b : a;
      if (other.kind == CKind::kSet && !options_.set_matches_scalar) return false;
    }
    if (a.kind == CKind::kList && b.kind == CKind::kList && !options_.unordered_lists) {
      return Ordered(a, b, depth);
    }
    bool set_semantics = a.kind == CKind::kSet || b.kind == CKind::kSet ||
                         a.kind == CKind::kPmList || b.kind == CKind::kPmList;
    return Unordered(a, b, set_semantics, depth);
  }

  // Tuples with different brackets are equal only as intervals whose differing ends are
  // infinite ("[2, \infty)" and "[2, \infty]").
  absl::StatusOr<bool> CompareTupleIntervals(const Collection& a, const Collection& b, int depth) {
    auto interval = [](const Collection& c) {
      return c.elems.size() == 2 && (c.open == '(' || c.open == '[') &&
             (c.close == ')' || c.close == ']');
    };
    if (!interval(a) || !interval(b)) return false;
    Interval ia = TupleInterval(a);
    Interval ib = TupleInterval(b);
    return CompareIntervals(ia, ib, depth);
  }

  int InfSign(const Ast& ast, int id) const {
    const Node& n = ast.nodes[id];
    if (n.kind == NodeKind::kInf) return 1;
    if (n.kind == NodeKind::kNeg && ast.nodes[n.kids[0]].kind == NodeKind::kInf) return -1;
    return 0;
  }

  Interval TupleInterval(const Collection& c) const {
    Interval iv;
    iv.lo = {c.elems[0].ast, c.elems[0].node, InfSign(*c.elems[0].ast, c.elems[0].node),
             c.open == '['};
    iv.hi = {c.elems[1].ast, c.elems[1].node, InfSign(*c.elems[1].ast, c.elems[1].node),
             c.close == ']'};
    return iv;
  }

  bool ContainsVar(const Ast& ast, int id, const std::string& name, int depth = 0) const {
    if (depth > 512) return true;
    const Node& n = ast.nodes[id];
    if (n.kind == NodeKind::kVar && n.text == name) return true;
    for (int k : n.kids) {
      if (ContainsVar(ast, k, name, depth + 1)) return true;
    }
    return false;
  }

  // "x > 3" -> (3, oo); "1 < x <= 2" -> (1, 2]; "[1, 2)" -> itself.
  bool ToInterval(const Side& s, Interval* out) const {
    if (s.node < 0) return false;
    const Ast& ast = *s.ast;
    const Node& n = ast.nodes[s.node];
    if (n.kind == NodeKind::kTuple) {
      if (n.kids.size() != 2 || (n.open != '(' && n.open != '[') ||
          (n.close != ')' && n.close != ']')) {
        return false;
      }
      Collection c;
      c.kind = CKind::kTuple;
      c.open = n.open;
      c.close = n.close;
      c.elems = {{&ast, n.kids[0], 0}, {&ast, n.kids[1], 0}};
      *out = TupleInterval(c);
      return true;
    }
    if (n.kind != NodeKind::kRel) return false;
    auto less = [](char op) { return op == '<' || op == 'l'; };
    auto greater = [](char op) { return op == '>' || op == 'g'; };
    auto closed = [](char op) { return op == 'l' || op == 'g'; };
    auto var_name = [&](int k) -> const std::string* {
      return ast.nodes[k].kind == NodeKind::kVar ? &ast.nodes[k].text : nullptr;
    };
    Bound neg_inf{&ast, -1, -1, false};
    Bound pos_inf{&ast, -1, 1, false};
    if (n.text.size() == 1) {
      char op = n.text[0];
      if (!less(op) && !greater(op)) return false;
      int lhs = n.kids[0];
      int rhs = n.kids[1];
      const std::string* v = var_name(lhs);
      bool var_left = v != nullptr && !ContainsVar(ast, rhs, *v);
      if (!var_left) {
        v = var_name(rhs);
        if (v == nullptr || ContainsVar(ast, lhs, *v)) return false;
        std::swap(lhs, rhs);  // a < x  ->  x > a
        op = less(op) ? (closed(op) ? 'g' : '>') : (closed(op) ? 'l' : '<');
      }
      Bound b{&ast, rhs, InfSign(ast, rhs), closed(op)};
      if (less(op)) {
        *out = {neg_inf, b};
      } else {
        *out = {b, pos_inf};
      }
      return true;
    }
    if (n.text.size() == 2) {
      char op0 = n.text[0];
      char op1 = n.text[1];
      const std::string* v = var_name(n.kids[1]);
      if (v == nullptr) return false;
      if (ContainsVar(ast, n.kids[0], *v) || ContainsVar(ast, n.kids[2], *v)) return false;
      if (less(op0) && less(op1)) {
        *out = {{&ast, n.kids[0], InfSign(ast, n.kids[0]), closed(op0)},
                {&ast, n.kids[2], InfSign(ast, n.kids[2]), closed(op1)}};
        return true;
      }
      if (greater(op0) && greater(op1)) {
        *out = {{&ast, n.kids[2], InfSign(ast, n.kids[2]), closed(op1)},
                {&ast, n.kids[0], InfSign(ast, n.kids[0]), closed(op0)}};
        return true;
      }
    }
    return false;
  }

  absl::StatusOr<bool> CompareBounds(const Bound& a, const Bound& b, int depth) {
    if (a.inf != 0 || b.inf != 0) return a.inf == b.inf;
    if (a.closed != b.closed) return false;
    return CompareSides({a.ast, a.node, 0}, {b.ast, b.node, 0}, depth + 1);
  }

  absl::StatusOr<bool> CompareIntervals(const Interval& a, const Interval& b, int depth) {
    SFPO_ASSIGN_OR_RETURN(bool lo, CompareBounds(a.lo, b.lo, depth));
    if (!lo) return false;
    return CompareBounds(a.hi, b.hi, depth);
  }

  absl::StatusOr<bool> CompareRelations(const Side& a, const Side& b, int depth) {
    const Node& na = N(a);
    const Node& nb = N(b);
    if (na.text == "=" && nb.text == "=") {
      const Ast& aa = *a.ast;
      const Ast& ba = *b.ast;
      const Node& al = aa.nodes[na.kids[0]];
      const Node& bl = ba.nodes[nb.kids[0]];
      if (al.kind == NodeKind::kVar && bl.kind == NodeKind::kVar && al.text == bl.text) {
        return CompareSides({&aa, na.kids[1], 0}, {&ba, nb.kids[1], 0}, depth + 1);
      }
      return EquationsEquivalent(a, b, depth);
    }
    if (na.text == "i" && nb.text == "i") {
      return CompareSides({a.ast, na.kids[1], 0}, {b.ast, nb.kids[1], 0}, depth + 1);
    }
    Interval ia, ib;
    if (ToInterval(a, &ia) && ToInterval(b, &ib)) return CompareIntervals(ia, ib, depth);
    if (na.text != nb.text || na.kids.size() != nb.kids.size()) return false;
    for (size_t i = 0; i < na.kids.size(); ++i) {
      SFPO_ASSIGN_OR_RETURN(bool eq,
                            CompareSides({a.ast, na.kids[i], 0}, {b.ast, nb.kids[i], 0}, depth + 1));
      if (!eq) return false;
    }
    return true;
  }

  void CollectVars(const Ast& ast, int id, absl::flat_hash_set<std::string>* out,
                   int depth = 0) const {
    if (depth > 512) return;
    const Node& n = ast.nodes[id];
    if (n.kind == NodeKind::kVar && n.text != "e") out->insert(n.text);
    if (n.kind == NodeKind::kInf) out->insert("oo");
    for (int k : n.kids) CollectVars(ast, k, out, depth + 1);
  }

  std::vector<std::string> Vars(const std::vector<Side>& sides) const {
    absl::flat_hash_set<std::string> set;
    for (const Side& s : sides) CollectVars(*s.ast, s.node, &set);
    std::vector<std::string> names(set.begin(), set.end());
    std::sort(names.begin(), names.end());
    return names;
  }

  Assignment Point(const std::vector<std::string>& names, int point) const {
    Assignment values;
    for (size_t i = 0; i < names.size(); ++i) {
      // \infty evaluates like a large generic number, so that -oo, +oo and oo + 1 differ.
      if (names[i] == "oo") {
        values.emplace(names[i], Rational(1000003 + point, 7));
      } else {
        values.emplace(names[i], SampleValue(static_cast<int>(i), point));
      }
    }
    return values;
  }

  // Structural equality, for what cannot be evaluated.
  bool SameTree(const Ast& a, int x, const Ast& b, int y, int depth = 0) const {
    if (depth > 512) return false;
    const Node& m = a.nodes[x];
    const Node& n = b.nodes[y];
    if (m.kind != n.kind || m.text != n.text || m.open != n.open || m.close != n.close ||
        m.kids.size() != n.kids.size()) {
      return false;
    }
    if (m.kind == NodeKind::kNum && a.numbers[m.num] != b.numbers[n.num]) return false;
    for (size_t i = 0; i < m.kids.size(); ++i) {
      if (!SameTree(a, m.kids[i], b, n.kids[i], depth + 1)) return false;
    }
    return true;
  }

  enum class PointState { kDefined, kOutsideDomain, kSkip };

  // Evaluates `sides` at one point into `out`; `states` says, per side, whether it has a value
  // there, is outside its domain (a negative under a root, a log of a non-positive number,
  // division by zero), or cannot be told (double overflow).
  absl::Status EvalAll(const std::vector<Side>& sides, const Assignment& point,
                       const EvalOptions& eval, std::vector<Value>* out,
                       std::vector<PointState>* states, bool* not_scalar) {
    out->assign(sides.size(), Value());
    states->assign(sides.size(), PointState::kDefined);
    for (size_t i = 0; i < sides.size(); ++i) {
      const Side& s = sides[i];
      absl::StatusOr<Value> v = Evaluate(*s.ast, s.node, point, s.mask, eval, budget_);
      if (v.ok()) {
        (*out)[i] = *std::move(v);
        continue;
      }
      if (IsBound(v.status())) return v.status();
      if (v.status().code() == absl::StatusCode::kFailedPrecondition) {
        *not_scalar = true;
        return absl::OkStatus();
      }
      (*states)[i] = IsOverflow(v.status()) ? PointState::kSkip : PointState::kOutsideDomain;
    }
    return absl::OkStatus();
  }

  absl::StatusOr<bool> NumericEqual(const Side& a, const Side& b, const EvalOptions& eval) {
    std::vector<Side> sides = {a, b};
    std::vector<std::string> names = Vars(sides);
    int points = names.empty() ? 1 : std::max(2, options_.points);
    int valid = 0;
    std::vector<Value> values;
    std::vector<PointState> states;
    for (int k = 0; k < points; ++k) {
      Assignment point = Point(names, k);
      bool not_scalar = false;
      SFPO_RETURN_IF_ERROR(EvalAll(sides, point, eval, &values, &states, &not_scalar));
      if (not_scalar) break;
      if (states[0] == PointState::kSkip || states[1] == PointState::kSkip) continue;
      // Defined on one side only: different domains, so not the same expression
      // (ln(x^2) vs 2 ln x). Outside both domains: no information.
      if (states[0] != states[1]) {
        if (names.empty()) break;  // constants: fall back to the trees
        return false;
      }
      if (states[0] == PointState::kOutsideDomain) continue;
      if (!ValuesEqual(values[0], values[1], options_.rel_tol)) return false;
      ++valid;
    }
    if (valid >= (names.empty() ? 1 : 2)) return true;
    // Same tree with the same sign choices is the same value.
    return a.mask == b.mask && SameTree(*a.ast, a.node, *b.ast, b.node);
  }

  absl::StatusOr<bool> CompareScalars(const Side& a, const Side& b) {
    EvalOptions eval;
    if (options_.percent == PercentMode::kIgnoreSign) eval.percent_is_identity = true;
    SFPO_ASSIGN_OR_RETURN(bool eq, NumericEqual(a, b, eval));
    if (eq || options_.percent != PercentMode::kFlexible) return eq;
    // "50\%" also matches 50.
    const Node& na = N(a);
    const Node& nb = N(b);
    if (na.kind == NodeKind::kPercent) return NumericEqual({a.ast, na.kids[0], a.mask}, b, eval);
    if (nb.kind == NodeKind::kPercent) return NumericEqual(a, {b.ast, nb.kids[0], b.mask}, eval);
    return false;
  }

  static bool IsZeroValue(const Value& v) {
    return v.exact ? v.q.IsZero() : std::abs(v.d) <= 1e-12;
  }

  // Two equations are equivalent when lhs - rhs of one is a constant nonzero multiple of the
  // other's at every sample point ("y = 2x + 1" and "2x - y + 1 = 0").
  absl::StatusOr<bool> EquationsEquivalent(const Side& a, const Side& b, int depth) {
    const Node& na = N(a);
    const Node& nb = N(b);
    std::vector<Side> sides = {{a.ast, na.kids[0], 0}, {a.ast, na.kids[1], 0},
                               {b.ast, nb.kids[0], 0}, {b.ast, nb.kids[1], 0}};
    std::vector<std::string> names = Vars(sides);
    if (names.empty()) {
      SFPO_ASSIGN_OR_RETURN(bool l, CompareSides(sides[0], sides[2], depth + 1));
      if (!l) return false;
      return CompareSides(sides[1], sides[3], depth + 1);
    }
    // Side by side (or swapped): the answer when the proportional test means nothing.
    auto sides_match = [&]() -> absl::StatusOr<bool> {
      SFPO_ASSIGN_OR_RETURN(bool l, CompareSides(sides[0], sides[2], depth + 1));
      if (l) {
        SFPO_ASSIGN_OR_RETURN(bool r, CompareSides(sides[1], sides[3], depth + 1));
        if (r) return true;
      }
      SFPO_ASSIGN_OR_RETURN(bool x, CompareSides(sides[0], sides[3], depth + 1));
      if (!x) return false;
      return CompareSides(sides[1], sides[2], depth + 1);
    };
    EvalOptions eval;
    std::vector<Value> v;
    std::vector<PointState> states;
    Value ratio;
    bool have_ratio = false;
    int valid = 0;
    Value first_da;
    bool have_da = false;
    bool da_varies = false;
    for (int k = 0; k < std::max(3, options_.points); ++k) {
      bool not_scalar = false;
      SFPO_RETURN_IF_ERROR(EvalAll(sides, Point(names, k), eval, &v, &states, &not_scalar));
      if (not_scalar) return SameTree(*a.ast, a.node, *b.ast, b.node);
      bool defined = true;
      for (PointState state : states) defined = defined && state == PointState::kDefined;
      if (!defined) continue;
      SFPO_ASSIGN_OR_RETURN(Value da, Combine('-', v[0], v[1], budget_));
      SFPO_ASSIGN_OR_RETURN(Value db, Combine('-', v[2], v[3], budget_));
      if (!have_da) {
        first_da = da;
        have_da = true;
      } else if (!ValuesEqual(first_da, da, options_.rel_tol)) {
        da_varies = true;
      }
      bool za = IsZeroValue(da);
      bool zb = IsZeroValue(db);
      if (za != zb) return false;
      ++valid;
      if (za) continue;
      SFPO_ASSIGN_OR_RETURN(Value r, Combine('/', da, db, budget_));
      if (!have_ratio) {
        ratio = std::move(r);
        have_ratio = true;
      } else if (!ValuesEqual(ratio, r, options_.rel_tol)) {
        return false;
      }
    }
    // lhs - rhs constant (an identity like x = x, or a contradiction like x^0 = 24): equal
    // ratios say nothing, so compare the sides themselves.
    if (valid >= 2 && da_varies) return true;
    if (valid >= 2 && !da_varies) return sides_match();
    return SameTree(*a.ast, a.node, *b.ast, b.node);
  }

  const Ast& g_;
  const Ast& p_;
  const EquivalenceOptions& options_;
  Budget* budget_;
};

}  // namespace

absl::StatusOr<bool> Equivalent(const Ast& gold, const Ast& pred,
                                const EquivalenceOptions& options, Budget* budget) {
  return Comparer(gold, pred, options, budget).Run();
}

}  // namespace sfpo
