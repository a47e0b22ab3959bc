"""Writes the fictitious demo data shipped in ``seed_data/demo/`` (run: python seed_data/make_demo.py).

Everything it writes is invented: organisations, projects and websites (all under the
reserved ``.example`` domain; project identifiers start with ``DEMO-``). Projects come in
the official Erasmus+ Project Results Platform CSV layout, so the real importer loads
them; organisations new to the programme come as a registry CSV with self-descriptions.
Output is deterministic: the same script writes the same files.
"""

from __future__ import annotations

import csv
import random
import re
from pathlib import Path

OUT = Path(__file__).resolve().parent / "demo"
RNG = random.Random(2026)

CITIES = {
    "AT": ["Graz", "Linz"],
    "BE": ["Ghent", "Liège"],
    "BG": ["Plovdiv", "Varna"],
    "HR": ["Split", "Rijeka"],
    "CY": ["Limassol"],
    "CZ": ["Brno", "Olomouc"],
    "DK": ["Aarhus", "Odense"],
    "EE": ["Tartu"],
    "FI": ["Tampere", "Oulu"],
    "FR": ["Lyon", "Nantes", "Lille"],
    "DE": ["Leipzig", "Bremen", "Freiburg"],
    "GR": ["Thessaloniki", "Patras"],
    "HU": ["Debrecen", "Pécs"],
    "IE": ["Galway", "Cork"],
    "IT": ["Bologna", "Palermo", "Turin"],
    "LV": ["Riga"],
    "LT": ["Kaunas"],
    "LU": ["Esch-sur-Alzette"],
    "MT": ["Valletta"],
    "NL": ["Utrecht", "Groningen"],
    "PL": ["Kraków", "Gdańsk", "Lublin"],
    "PT": ["Porto", "Coimbra"],
    "RO": ["Cluj-Napoca", "Iași"],
    "SK": ["Košice"],
    "SI": ["Maribor"],
    "ES": ["Valencia", "Bilbao", "Seville"],
    "SE": ["Umeå", "Malmö"],
    "IS": ["Akureyri"],
    "LI": ["Vaduz"],
    "NO": ["Bergen", "Trondheim"],
    "MK": ["Bitola"],
    "RS": ["Novi Sad"],
    "TR": ["İzmir", "Eskişehir"],
    "UA": ["Lviv"],
    "CH": ["Basel"],
    "GB": ["Leeds"],
}
PARTNER_COUNTRIES = {"UA", "CH", "GB"}

# sector -> (Erasmus+ organisation-type label, name patterns)
SECTORS = {
    "school": (
        "School/Institute/Educational centre – General education (secondary level)",
        [
            "{city} Secondary School No. {n}",
            "{city} Comprehensive School",
            "{city} Lyceum of Sciences",
            "Primary School {city} North",
        ],
    ),
    "vet": (
        "School/Institute/Educational centre – Vocational Training (secondary level)",
        [
            "{city} Vocational College of Engineering",
            "{city} School of Hospitality and Tourism",
            "Technical Vocational School {city}",
            "{city} Centre for Vocational Training in Health Care",
        ],
    ),
    "higher_education": (
        "Higher education institution (tertiary level)",
        [
            "University of Applied Sciences {city}",
            "{city} University of Education",
            "{city} Technical University",
            "{city} Academy of Arts and Design",
        ],
    ),
    "adult_education": (
        "School/Institute/Educational centre – Adult education",
        ["{city} Adult Learning Centre", "Folk High School {city}", "{city} Second Chance Education Centre"],
    ),
    "youth": ("Youth organisation", ["Youth Network {city}", "{city} Youth Council", "Young Voices {city}"]),
    "enterprise": (
        "Small and medium sized enterprise",
        [
            "{city} Digital Learning Solutions",
            "{city} Robotics Workshop",
            "Green Skills Lab {city}",
            "{city} Software Studio",
        ],
    ),
    "public_body": (
        "Regional Public body",
        [
            "Regional Directorate of Education {city}",
            "{city} Municipal Employment Office",
            "{city} City Council Department of Education",
        ],
    ),
    "research": (
        "Research Institute/Centre",
        ["{city} Institute for Educational Research", "Centre for Social Innovation {city}"],
    ),
    "civil_society": (
        "Non-governmental organisation/association/social enterprise",
        [
            "{city} Association for Inclusive Education",
            "Friends of Lifelong Learning {city}",
            "{city} Migrant Support Network",
            "{city} Foundation for Active Citizenship",
        ],
    ),
    "other": ("Other", ["{city} Public Library", "{city} Science Museum"]),
}

THEMES = {
    "digital": {
        "titles": [
            "Digital Classrooms for All",
            "Teachers as Digital Creators",
            "Coding in the Classroom",
            "AI Literacy for Young Learners",
            "Open Digital Resources for Teachers",
        ],
        "text": "Schools and training centres still struggle to use digital tools in everyday teaching. "
        "The partnership develops a competence framework, open educational resources and a blended "
        "training course so that teachers integrate coding, media literacy and safe use of AI in "
        "their lessons.",
        "self": "We help teachers and learners use digital tools, coding and artificial intelligence well.",
    },
    "inclusion": {
        "titles": [
            "Every Learner Counts",
            "Inclusive Schools Toolkit",
            "Bridges to Belonging",
            "Diversity in the Classroom",
        ],
        "text": "Learners with fewer opportunities, migrants and refugees leave education early far too "
        "often. Partners exchange practice on inclusive teaching, mentoring and family engagement, "
        "and test a toolkit for inclusive school culture with pupils, parents and local services.",
        "self": "We work for inclusion of learners with fewer opportunities, migrants and refugees.",
    },
    "vet_industry": {
        "titles": [
            "Skills for Industry 4.0",
            "Work-Based Learning Alliance",
            "Apprenticeships Go Green",
            "Welding the Future: VET and Industry",
        ],
        "text": "Companies report a growing gap between vocational training and the skills industry needs. "
        "VET providers and enterprises co-design work-based learning modules, in-company trainer "
        "courses and micro-credentials for automation, mechatronics and sustainable production.",
        "self": "We link vocational education and training with companies through work-based learning.",
    },
    "teacher_training": {
        "titles": [
            "Teachers Learning Together",
            "Mentoring New Teachers",
            "Professional Learning Communities",
            "Reflective Practice in Teacher Education",
        ],
        "text": "New teachers leave the profession in their first years. Universities, schools and education "
        "authorities build mentoring programmes, peer observation and professional learning "
        "communities for initial and continuing teacher education.",
        "self": "We train teachers and support their continuing professional development.",
    },
    "special_needs": {
        "titles": [
            "Autism-Friendly Classrooms",
            "Assistive Technology in Special Education",
            "Learning Without Barriers",
            "Dyslexia Support Network",
        ],
        "text": "Pupils with special educational needs, autism or dyslexia need adapted teaching. Partners "
        "develop training for teachers and assistants on assistive technology, universal design for "
        "learning and individual education plans, and pilot it in mainstream and special schools.",
        "self": "We support pupils with special educational needs, autism, dyslexia and disabilities.",
    },
    "adult_basic": {
        "titles": [
            "Upskilling Pathways: Literacy First",
            "Numeracy for Life",
            "Digital Basics for Seniors",
            "Second Chance for Adults",
        ],
        "text": "Millions of adults lack basic literacy, numeracy and digital skills. Adult education "
        "providers, libraries and employment services design outreach, skills assessment and "
        "flexible learning pathways for low-qualified adults and older learners.",
        "self": "We offer adult basic skills courses: literacy, numeracy and digital skills for adults.",
    },
    "youth_participation": {
        "titles": [
            "Youth Voices in Local Democracy",
            "Young Citizens Lab",
            "EU Youth Dialogue in Action",
            "Participation Starts Local",
        ],
        "text": "Young people feel far from democratic decision-making. Youth organisations and "
        "municipalities train youth workers, run participatory budgeting with young people and "
        "create tools for youth councils and civic engagement.",
        "self": "We promote youth participation, youth work and civic engagement of young people.",
    },
    "green": {
        "titles": [
            "Green Schools Network",
            "Climate Action in Education",
            "Sustainable Campus Challenge",
            "Circular Economy Skills",
        ],
        "text": "Education must prepare learners for the green transition. Partners develop project-based "
        "learning on climate change, biodiversity and circular economy, and help schools and "
        "campuses cut their own footprint.",
        "self": "We educate for sustainability, climate action and the green transition.",
    },
    "entrepreneurship": {
        "titles": ["Young Entrepreneurs Academy", "Social Entrepreneurship in VET", "Start-up Skills Camp"],
        "text": "Entrepreneurial skills help young people and adults create their own jobs. Partners build "
        "a mini-company programme, mentoring by local entrepreneurs and a social entrepreneurship "
        "curriculum for schools, VET and higher education.",
        "self": "We teach entrepreneurship and social entrepreneurship to young people and adults.",
    },
    "languages": {
        "titles": ["Languages Open Doors", "CLIL in Vocational Schools", "Multilingual Classrooms"],
        "text": "Language learning and multilingual classrooms are a daily reality. Partners exchange "
        "methods for content and language integrated learning, home-language support and virtual "
        "exchanges between classes.",
        "self": "We teach languages and support multilingual classrooms and virtual exchange.",
    },
}
ACTIONS = [
    "Cooperation partnerships in school education",
    "Cooperation partnerships in vocational education and training",
    "Cooperation partnerships in adult education",
    "Cooperation partnerships in youth",
    "Cooperation partnerships in higher education",
    "Small-scale partnerships in school education",
]

HEADERS = [
    "Programme",
    "Key Action",
    "Action Type",
    "Call year",
    "Project Identifier",
    "Project Title",
    "Topics",
    "Project Summary",
    "Project Status",
    "EU Grant award in euros (This amount represents the grant awarded after the selection stage and is "
    "indicative. Please note that any changes made during or after the project's lifetime will not be "
    "reflected here.)",
    "Is Good Practice",
    "Is Success Story",
    "Project Website",
    "Results Available",
    "Results Platform Project Card",
    "Participating countries",
    "Coordinating organisation name",
    "Coordinating organisation type",
    "Coordinator's address",
    "Coordinator's region",
    "Coordinator's country",
    "Coordinator's website",
]
MAX_PARTNERS = 7
for _n in range(1, MAX_PARTNERS + 1):
    HEADERS += [f"Partner {_n} {c}" for c in ("name", "organisation type", "address", "region", "country", "website")]


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


# what the description calls each sector, article included ("is a other" read badly)
KINDS = {
    "school": "a general education school",
    "vet": "a vocational school",
    "higher_education": "a higher education institution",
    "adult_education": "an adult education centre",
    "youth": "a youth organisation",
    "enterprise": "a small business",
    "public_body": "a regional public body",
    "research": "a research institute",
    "civil_society": "a non-governmental organisation",
    "other": "an organisation",
}


def make_org(sector: str, country: str, used: set[str], themes: list[str]) -> dict[str, str]:
    label, patterns = SECTORS[sector]
    for _ in range(50):
        city = RNG.choice(CITIES[country])
        name = RNG.choice(patterns).format(city=city, n=RNG.randint(1, 40))
        if name not in used:
            break
    else:
        name = f"{name} {len(used)}"
    used.add(name)
    focus = " ".join(THEMES[t]["self"] for t in themes)
    description = f"{name} is {KINDS[sector]} in {city}. {focus} Fictitious organisation for the partner-match demo."
    return {
        "name": name,
        "organisation_type": label,
        "sector": sector,
        "country": country,
        "city": city,
        "website": f"https://{slug(name)}.example",
        "description": description,
        "address": f"{RNG.randint(1, 120)} Main Street, {RNG.randint(1000, 99999)}, {city}",
    }


def main() -> None:
    OUT.mkdir(exist_ok=True)
    used: set[str] = set()
    countries = sorted(CITIES)
    programme = [c for c in countries if c not in PARTNER_COUNTRIES]
    theme_names = sorted(THEMES)
    sectors = list(SECTORS)
    # clusters of repeat partners: each a theme, 6-9 organisations from different countries and sectors
    clusters: list[tuple[str, list[dict[str, str]]]] = []
    for i in range(24):
        theme = theme_names[i % len(theme_names)]
        size = RNG.randint(6, 9)
        members = []
        for country in RNG.sample(programme, size):
            sector = sectors[(i + len(members) * 3) % len(sectors)] if RNG.random() < 0.7 else RNG.choice(sectors)
            members.append(make_org(sector, country, used, [theme, RNG.choice(theme_names)]))
        clusters.append((theme, members))
    experienced = [o for _, m in clusters for o in m]

    projects = []
    for number in range(1, 141):
        theme, members = clusters[number % len(clusters)]
        size = min(len(members), RNG.randint(3, 6))
        team = RNG.sample(members, size)
        if RNG.random() < 0.25:
            outsider = RNG.choice(experienced)
            if outsider not in team:
                team.append(outsider)
        year = RNG.randint(2015, 2024)
        coordinator, partners = team[0], team[1:]
        country = coordinator["country"]
        ident = f"DEMO-{year}-1-{country}01-KA220-{number:06d}"
        title = RNG.choice(THEMES[theme]["titles"])
        if RNG.random() < 0.5:
            title = f"{title} ({coordinator['city']})"
        row = {h: "" for h in HEADERS}
        row.update(
            {
                "Programme": "Erasmus+",
                "Key Action": "Partnerships for cooperation and exchanges of practices",
                "Action Type": RNG.choice(ACTIONS),
                "Call year": str(year),
                "Project Identifier": ident,
                "Project Title": title,
                "Topics": theme.replace("_", " ").title(),
                "Project Summary": f"{THEMES[theme]['text']} The consortium brings together "
                f"{len(team)} organisations from "
                f"{len({o['country'] for o in team})} countries. (Fictitious demo project.)",
                "Project Status": "finalized" if year < 2023 else "ongoing",
                HEADERS[9]: f"{RNG.randint(60, 400) * 1000}.00",
                "Is Good Practice": "No",
                "Is Success Story": "No",
                "Results Available": "No",
                "Participating countries": ",".join(sorted({o["country"] for o in team})),
                "Coordinating organisation name": coordinator["name"],
                "Coordinating organisation type": coordinator["organisation_type"],
                "Coordinator's address": coordinator["address"],
                "Coordinator's country": country,
                "Coordinator's website": coordinator["website"],
            }
        )
        for n, partner in enumerate(partners[:MAX_PARTNERS], start=1):
            row.update(
                {
                    f"Partner {n} name": partner["name"],
                    f"Partner {n} organisation type": partner["organisation_type"],
                    f"Partner {n} address": partner["address"],
                    f"Partner {n} country": partner["country"],
                    f"Partner {n} website": partner["website"],
                }
            )
        projects.append(row)
    with (OUT / "projects.csv").open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=HEADERS)
        writer.writeheader()
        writer.writerows(projects)

    used_experienced = {
        (r[f"Partner {n} name"], r[f"Partner {n} country"]) for r in projects for n in range(1, MAX_PARTNERS + 1)
    } | {(r["Coordinating organisation name"], r["Coordinator's country"]) for r in projects}
    experienced = [o for o in experienced if (o["name"], o["country"]) in used_experienced]
    newcomers = []
    target = int(len(experienced) * 0.8) + 10  # > 40 % of all organisations
    while len(newcomers) < target:
        sector = sectors[len(newcomers) % len(sectors)]
        country = countries[(len(newcomers) * 7) % len(countries)]
        newcomers.append(make_org(sector, country, used, RNG.sample(theme_names, 2)))
    columns = ["name", "organisation_type", "sector", "country", "city", "website", "description"]
    with (OUT / "organisations.csv").open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(experienced + newcomers)
    print(
        f"{len(projects)} projects, {len(experienced)} experienced and {len(newcomers)} new organisations "
        f"in {len({o['country'] for o in experienced + newcomers})} countries"
    )


if __name__ == "__main__":
    main()
