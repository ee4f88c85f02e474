use super::*;

fn q(family: Family, difficulty: u8, seed: u64) -> Question {
    generate(family, difficulty, seed).expect("valid id")
}

#[test]
fn every_family_is_a_pure_function_of_its_id() {
    for family in Family::ALL {
        for difficulty in MIN_DIFFICULTY..=MAX_DIFFICULTY {
            let mut prompts = std::collections::BTreeSet::new();
            for seed in 0..64 {
                let question = q(family, difficulty, seed);
                assert_eq!(question, q(family, difficulty, seed), "{family} d{difficulty} seed {seed}");
                assert_eq!(regenerate(&question.id).expect("regenerates"), question);
                assert!(question.prompt.ends_with('='), "{}", question.prompt);
                assert!(question.prompt.is_ascii() && question.answer.is_ascii());
                // The answer is correct and well formed by its own verifier.
                let score = verify(&question, &question.answer);
                assert!(score.correct && score.well_formed && score.reward == MAX_REWARD, "{question:?}");
                // Everything fits the tiny model's context: BOS + prompt + answer + EOS ≤ 24.
                assert!(question.prompt.len() + question.answer.len() + 2 <= 24, "{question:?}");
                prompts.insert(question.prompt);
            }
            // Seeds give different questions (not all the same).
            assert!(prompts.len() > 8, "{family} d{difficulty}: only {} distinct prompts", prompts.len());
        }
    }
}

#[test]
fn questions_are_pinned() {
    // The suite is a protocol: these exact questions are what version 1 means. A change here
    // must come with a SUITE_VERSION bump.
    let pinned: Vec<(String, String)> = Family::ALL.iter().map(|&f| q(f, 3, 7)).map(|q| (q.prompt, q.answer)).collect();
    let shown: Vec<String> = pinned.iter().map(|(p, a)| format!("{p}{a}")).collect();
    assert_eq!(
        shown,
        [
            "257+951=1208",
            "422-18=404",
            "294*9=2646",
            "s:18509=01589",
            "r:yxbex=xebxy",
            "b:147=10010011",
            "c:817,817==",
            "4x+123=223;x=25"
        ],
        "SUITE_VERSION {SUITE_VERSION} changed its questions"
    );
}

#[test]
fn answers_are_right() {
    for seed in 0..200 {
        let add = q(Family::Add, 4, seed);
        let (a, b) = add.prompt.trim_end_matches('=').split_once('+').expect("a+b");
        assert_eq!(add.answer, (a.parse::<u64>().expect("a") + b.parse::<u64>().expect("b")).to_string());

        let sub = q(Family::Sub, 4, seed);
        let (a, b) = sub.prompt.trim_end_matches('=').split_once('-').expect("a-b");
        assert_eq!(
            sub.answer.parse::<u64>().expect("answer") + b.parse::<u64>().expect("b"),
            a.parse::<u64>().expect("a")
        );

        let bin = q(Family::ToBinary, 3, seed);
        let n: u64 = bin.prompt.trim_start_matches("b:").trim_end_matches('=').parse().expect("n");
        assert_eq!(u64::from_str_radix(&bin.answer, 2).expect("binary"), n);
        assert!(n < 1 << 8);

        let lin = q(Family::Linear, 2, seed);
        let (equation, _) = lin.prompt.split_once(';').expect("eq;x=");
        let (lhs, c) = equation.split_once('=').expect("lhs=c");
        let (a, b) = lhs.split_once("x+").expect("ax+b");
        let x: u64 = lin.answer.parse().expect("x");
        assert_eq!(a.parse::<u64>().expect("a") * x + b.parse::<u64>().expect("b"), c.parse::<u64>().expect("c"));
    }
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..100 {
        seen.insert(q(Family::Compare, 2, seed).answer);
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["<", "=", ">"]);
}

#[test]
fn verifiers_reject_near_misses() {
    for family in Family::ALL {
        for seed in 0..20 {
            let question = q(family, 3, seed);
            let answer = &question.answer;
            let mut near =
                vec![format!(" {answer}"), format!("{answer} "), format!("{answer}\n"), format!("{answer}0")];
            if answer.len() > 1 {
                near.push(answer[..answer.len() - 1].to_string());
                let mut swapped: Vec<char> = answer.chars().collect();
                swapped.swap(0, 1);
                let swapped: String = swapped.into_iter().collect();
                if &swapped != answer {
                    near.push(swapped);
                }
            }
            if answer.chars().all(|c| c.is_ascii_digit()) && answer.len() > 1 {
                near.push(format!("0{answer}"));
            }
            for miss in near {
                let score = verify(&question, &miss);
                assert!(!score.correct, "{family}: {miss:?} accepted for {}", question.prompt);
                assert!(score.reward < CORRECT_REWARD);
            }
        }
    }
    // A wrong answer in the right shape earns only the format term.
    let add = q(Family::Add, 2, 1);
    let wrong = (add.answer.parse::<u64>().expect("n") + 1).to_string();
    assert_eq!(verify(&add, &wrong), Score { reward: FORMAT_REWARD, correct: false, well_formed: true });
    let compare = q(Family::Compare, 2, 1);
    assert!(verify(&compare, "<>").reward == 0.0 && verify(&compare, "≤").reward == 0.0);
}

#[test]
fn verifiers_take_any_string_and_score_garbage_zero() {
    let huge = "1".repeat(10_000_000);
    let garbage = ["", " ", "\0", "\u{1b}[31m", "日本語", "🦀", "\u{202e}123", "NaN", "-1", "+5", "1e3", "0x1f", &huge];
    for family in Family::ALL {
        let question = q(family, 3, 11);
        for input in garbage {
            let score = verify(&question, input);
            assert!(!score.correct, "{family}: {:?} accepted", &input[..input.len().min(20)]);
            assert_eq!(score.reward, 0.0, "{family}: {:?} rewarded", &input[..input.len().min(20)]);
        }
    }
    // Over the length cap scores zero even if it starts with the answer.
    let add = q(Family::Add, 1, 0);
    let padded = format!("{}{}", add.answer, " ".repeat(MAX_ANSWER_BYTES));
    assert_eq!(verify(&add, &padded), Score::ZERO);
}

#[test]
fn bad_ids_are_refused_with_reasons() {
    assert_eq!(generate(Family::Add, 0, 1), Err(TaskError::Difficulty(0)));
    assert_eq!(generate(Family::Add, 6, 1).expect_err("6").to_string(), "difficulty 6 is outside 1..=5");
    let future = QuestionId { suite: SUITE_VERSION + 1, ..QuestionId::new(Family::Add, 1, 1) };
    assert_eq!(
        regenerate(&future).expect_err("future").to_string(),
        format!(
            "question is from task suite version {}; this build generates version {SUITE_VERSION}",
            SUITE_VERSION + 1
        )
    );
    assert_eq!("mul_digit".parse::<Family>(), Ok(Family::MulDigit));
    assert_eq!("division".parse::<Family>().expect_err("unknown").to_string(), "no task family is called \"division\"");
    // Wire names round-trip through serde.
    let id = QuestionId::new(Family::SortDigits, 2, u64::MAX);
    let json = serde_json::to_string(&id).expect("json");
    assert_eq!(
        json,
        format!(r#"{{"family":"sort_digits","difficulty":2,"seed":{},"suite":{SUITE_VERSION}}}"#, u64::MAX)
    );
    assert_eq!(serde_json::from_str::<QuestionId>(&json).expect("back"), id);
    assert_eq!(id.to_string(), format!("sort_digits/d2/{}@v1", u64::MAX));
}

#[test]
fn splitmix_matches_the_published_sequence() {
    // First outputs for seed 1234567 from the reference implementation (Vigna, splitmix64.c).
    let mut rng = SplitMix64::new(1_234_567);
    assert_eq!(rng.next_u64(), 6_457_827_717_110_365_317);
    assert_eq!(rng.next_u64(), 3_203_168_211_198_807_973);
    let mut rng = SplitMix64::new(9);
    assert!((0..10_000).all(|_| rng.below(7) < 7));
}

#[test]
fn every_generated_question_typed_back_is_read_as_the_suite_wrote_it() {
    for family in Family::ALL {
        for difficulty in MIN_DIFFICULTY..=MAX_DIFFICULTY {
            for seed in 0..32 {
                let question = q(family, difficulty, seed);
                let posed = pose(&question.prompt).unwrap_or_else(|e| panic!("{}: {e}", question.prompt));
                assert_eq!(
                    (posed.family, posed.prompt.as_str(), posed.answer.as_str()),
                    (family, question.prompt.as_str(), question.answer.as_str())
                );
                assert!(verify_posed(&posed, &question.answer).correct);
            }
        }
    }
}

#[test]
fn a_typed_question_is_read_loosely_and_scored_like_a_generated_one() {
    let cases = [
        (" 12 + 34 ", Family::Add, "12+34=", "46"),
        ("100-1", Family::Sub, "100-1=", "99"),
        ("123*7=", Family::MulDigit, "123*7=", "861"),
        ("s:3141", Family::SortDigits, "s:3141=", "1134"),
        ("r:abc=", Family::Reverse, "r:abc=", "cba"),
        ("b:10", Family::ToBinary, "b:10=", "1010"),
        ("c:12,7=", Family::Compare, "c:12,7=", ">"),
        ("c:5,5", Family::Compare, "c:5,5=", "="),
        ("3x+4=19;x=", Family::Linear, "3x+4=19;x=", "5"),
        ("3x+4=19", Family::Linear, "3x+4=19;x=", "5"),
    ];
    for (typed, family, prompt, answer) in cases {
        let posed = pose(typed).unwrap_or_else(|e| panic!("{typed:?}: {e}"));
        assert_eq!(posed, Posed { family, prompt: prompt.into(), answer: answer.into() }, "{typed:?}");
    }
    let posed = pose("2+2").expect("a sum");
    let right = verify_posed(&posed, "4");
    assert!(right.correct && right.well_formed && right.reward == MAX_REWARD);
    let wrong = verify_posed(&posed, "5");
    assert!(!wrong.correct && wrong.well_formed && wrong.reward == FORMAT_REWARD);
    assert_eq!(verify_posed(&posed, "four"), Score::ZERO);
}

#[test]
fn text_that_is_no_question_of_the_suite_is_refused_with_what_would_be() {
    let refused = |text: &str| pose(text).expect_err(text);
    assert_eq!(refused("   "), PoseError::Empty);
    assert!(matches!(refused(&"1".repeat(60)), PoseError::TooLong { len: 60 }));
    assert_eq!(refused("hello"), PoseError::Unrecognised);
    assert!(refused("hello").to_string().contains("a+b="), "the refusal lists the forms");
    assert_eq!(refused("12+x"), PoseError::Number("x".into()));
    assert_eq!(refused("-3+4"), PoseError::Number("-3".into()));
    assert_eq!(refused("99999999999999999999+1"), PoseError::Number("99999999999999999999".into()));
    for text in ["3-5", "12*10", "12*1", "2x+1=4", "0x+1=1", "r:ABC", "s:12a", "c:12", "x+1=3"] {
        assert!(matches!(refused(text), PoseError::Outside(_) | PoseError::Number(_)), "{text}: {:?}", pose(text));
    }
    assert!(refused("3-5").to_string().contains("a ≥ b"));
}

#[test]
fn partial_credit_counts_the_characters_right_from_the_units_up() {
    let with = |family: Family, answer: &str| {
        let mut question = q(family, 1, 0);
        question.answer = answer.into();
        question
    };
    let sum = with(Family::Add, "1234");
    assert_eq!(partial_credit(&sum, "1234"), 1.0);
    assert_eq!(partial_credit(&sum, "1334"), 0.75, "three of four digits");
    assert_eq!(partial_credit(&sum, "234"), 0.75, "the units aligned, a digit missing");
    assert_eq!(partial_credit(&sum, "91234"), 0.8, "an extra digit counts against it");
    assert_eq!(partial_credit(&sum, "4321"), 0.0);
    assert_eq!(partial_credit(&sum, "12a4"), 0.0, "not well formed");
    assert_eq!(partial_credit(&sum, ""), 0.0);
    assert_eq!(partial_credit(&sum, &"1".repeat(MAX_ANSWER_BYTES + 1)), 0.0);
    assert_eq!(partial_credit(&with(Family::ToBinary, "1010"), "0010"), 0.75);
    assert_eq!(partial_credit(&with(Family::Compare, "<"), ">"), 0.0);
    // Exactly 1 where the verifier says correct, below it everywhere else.
    for family in Family::ALL {
        for seed in 0..20 {
            let question = q(family, 3, seed);
            assert_eq!(partial_credit(&question, &question.answer), 1.0, "{family} {seed}");
            let wrong = format!("{}0", question.answer);
            assert_eq!(verify(&question, &wrong).correct, partial_credit(&question, &wrong) == 1.0, "{family} {wrong}");
        }
    }
}
