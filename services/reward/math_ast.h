// The parsed form of an answer: a flat arena of nodes. Built by ParseAnswer (math_parser.h),
// read by the evaluator and the equivalence checker. Plain data, no behaviour.
#ifndef SFPO_SERVICES_REWARD_MATH_AST_H_
#define SFPO_SERVICES_REWARD_MATH_AST_H_

#include <string>
#include <vector>

#include "services/reward/rational.h"

namespace sfpo {

enum class NodeKind {
  kNum,        // numbers[num]; `decimal` when written with a '.' or a negative exponent
  kVar,        // text: the name ("x", "x_1", "alpha", "monday"); "e" is Euler's number
  kPi,
  kInf,        // \infty
  kAdd,        // kids[0] + kids[1]
  kNeg,        // -kids[0]
  kMul,        // kids[0] * kids[1]
  kDiv,        // kids[0] / kids[1]
  kPow,        // kids[0] ^ kids[1]
  kPm,         // kids[0] +- kids[1], or +-kids[0] when it has one kid
  kSqrt,       // root of kids[0]; index kids[1] when present (\sqrt[3]{x})
  kFunc,       // text: sin, ln, log, ...; kids[0] the argument, kids[1] a log base if present
  kFactorial,  // kids[0]!
  kAbs,        // |kids[0]|
  kPercent,    // kids[0] %
  kBinom,      // \binom{kids[0]}{kids[1]}
  kTuple,      // open/close brackets, two or more kids: (1, 2), [1, 2), (a, b]; a matrix is
               // open = close = 'm' over rows with open = close = 'r' (any number of kids)
  kSet,        // \{ kids \} or { kids }
  kEmptySet,
  kUnion,      // kids[0] \cup kids[1] \cup ...
  kIntersect,  // kids[0] \cap kids[1] \cap ...
  kRel,        // kids[0] ops[0] kids[1] ops[1] ...; ops in `text`: = < > l(<=) g(>=) n(!=) i(\in)
  kList,       // top-level or bracket-free comma list: "1, 2", "x = 1 or x = 2"
};

struct Node {
  NodeKind kind = NodeKind::kNum;
  std::vector<int> kids;
  std::string text;
  char open = 0;
  char close = 0;
  int num = -1;
  bool decimal = false;
};

struct Ast {
  std::vector<Node> nodes;
  std::vector<Rational> numbers;
  int root = -1;
};

}  // namespace sfpo

#endif  // SFPO_SERVICES_REWARD_MATH_AST_H_
