import { useQueryClient } from "@tanstack/react-query";
import { useState, type ReactNode } from "react";
import { NavLink, useNavigate } from "react-router";
import { logOut } from "../api/auth";
import { useSession } from "../api/useSession";
import { useOrg } from "../lib/org";

const LINKS = [
  { to: "/chat", label: "Chat" },
  { to: "/keys", label: "API keys" },
  { to: "/usage", label: "Usage" },
  { to: "/organisation", label: "Organisation" },
  { to: "/plan", label: "Plan" },
];

function OrgSwitcher() {
  const { org, orgs, switchOrg } = useOrg();
  if (orgs.length === 0) return null;
  return (
    <label className="org-switcher">
      <span className="visually-hidden">Organisation</span>
      <select value={org?.id ?? ""} onChange={(e) => switchOrg(e.target.value)} aria-label="Organisation">
        {orgs.map((o) => (
          <option key={o.id} value={o.id}>
            {o.name}
          </option>
        ))}
      </select>
    </label>
  );
}

export function Layout({ children }: { children: ReactNode }) {
  const { user } = useSession();
  const [open, setOpen] = useState(false);
  const navigate = useNavigate();
  const qc = useQueryClient();
  return (
    <div className="app">
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <NavLink to="/chat" className="brand">
          Parley
        </NavLink>
        <button
          type="button"
          className="menu-button"
          aria-expanded={open}
          aria-controls="main-nav"
          onClick={() => setOpen(!open)}
        >
          Menu
        </button>
        <nav id="main-nav" aria-label="Main" className={open ? "nav nav-open" : "nav"}>
          <ul>
            {LINKS.map((l) => (
              <li key={l.to}>
                <NavLink to={l.to} onClick={() => setOpen(false)}>
                  {l.label}
                </NavLink>
              </li>
            ))}
          </ul>
          <div className="nav-tools">
            <OrgSwitcher />
            <span className="user" title={user?.email}>
              {user?.name || user?.email}
            </span>
            <button
              type="button"
              className="button-secondary"
              onClick={async () => {
                await logOut();
                qc.clear();
                navigate("/login");
              }}
            >
              Log out
            </button>
          </div>
        </nav>
      </header>
      <main id="main" tabIndex={-1}>
        {children}
      </main>
    </div>
  );
}
