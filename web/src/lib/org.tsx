// The organisation the app acts in: sent as Parley-Organization on every request.
import { useQueryClient } from "@tanstack/react-query";
import { createContext, useCallback, useContext, useEffect, useMemo, useState, type ReactNode } from "react";
import { setCurrentOrg } from "../api/http";
import { useOrgs } from "../api/hooks";
import type { Org } from "../api/types";
import { useSession } from "../api/useSession";

const STORAGE = "parley.org";

interface OrgState {
  org: Org | null;
  orgs: Org[];
  switchOrg: (id: string) => void;
  loading: boolean;
  error: unknown;
}

const OrgContext = createContext<OrgState | null>(null);

export function OrgProvider({ children }: { children: ReactNode }) {
  const { user } = useSession();
  const orgs = useOrgs();
  const qc = useQueryClient();
  const [chosen, setChosen] = useState<string | null>(() => localStorage.getItem(STORAGE));
  const list = orgs.data?.data ?? [];
  const org =
    list.find((o) => o.id === chosen) ?? list.find((o) => o.id === user?.default_org_id) ?? list[0] ?? null;

  // Before any child query runs, the header must name the organisation shown.
  setCurrentOrg(org?.id ?? null);

  useEffect(() => {
    if (org && org.id !== chosen) setChosen(org.id);
  }, [org, chosen]);

  const switchOrg = useCallback(
    (id: string) => {
      localStorage.setItem(STORAGE, id);
      setCurrentOrg(id);
      setChosen(id);
      void qc.invalidateQueries();
    },
    [qc],
  );

  const value = useMemo(
    () => ({ org, orgs: list, switchOrg, loading: orgs.isPending, error: orgs.error }),
    [org, list, switchOrg, orgs.isPending, orgs.error],
  );
  return <OrgContext.Provider value={value}>{children}</OrgContext.Provider>;
}

export function useOrg(): OrgState {
  const value = useContext(OrgContext);
  if (!value) throw new Error("useOrg outside OrgProvider");
  return value;
}

const RANK = { viewer: 0, member: 1, admin: 2, owner: 3 } as const;

/** Whether the current role reaches `role` (the API enforces it regardless). */
export function roleAtLeast(org: Org | null, role: keyof typeof RANK): boolean {
  return !!org?.role && RANK[org.role] >= RANK[role];
}
